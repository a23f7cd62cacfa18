"""The start check of a service with witnesses (``CheckpointWitnessing.check_witnesses``):
every witness asked at once, the check over as soon as the quorum is decided either way, a
witness that does not answer costing one ``witness_timeout`` in all, and every answer that
proves nothing (malformed, 5xx, a redirect, another key's cosignature) counted as not ahead.

Real sockets throughout: real witnesses (``WitnessThread``) and scripted ones
(``HostileServer``) answering add-checkpoint. No timing is asserted: what is asserted is
structural — which requests were in flight together, whether a hung request was still open
when the check returned, what the check logged."""

from __future__ import annotations

import contextlib
import itertools
import logging
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from witness_testkit import NOW, ORIGIN, entries, grown

from hostile_http import Answer, HostileServer, bounded, ok, redirect, trickle_head
from ironroot.cose import Problem
from ironroot.crypto import Algorithm, PrivateKey
from ironroot.errors import (
    ConfigError,
    InsufficientCosignatures,
    IronrootError,
    StorageError,
    StoreUnavailable,
)
from ironroot.log import Log
from ironroot.transparency import CheckpointWitnessing, WitnessEndpoint
from ironroot.witness import (
    AddCheckpoint,
    CosignatureVerifier,
    Cosigner,
    MemoryWitnessStore,
    Witness,
    WitnessClient,
    WitnessedLog,
    WitnessThread,
)

pytestmark = pytest.mark.integration

ADD = "add-checkpoint"
SIZE = {"Content-Type": "text/x.tlog.size"}
REFUSED = (
    "2 of the 3 witnesses (the quorum is 2) have cosigned a tree of log.example/witnessed "
    "that the local one (size 2) does not extend: "
)


def _size(size: int) -> Answer:
    """What a witness at ``size`` answers an add-checkpoint whose ``old`` is not its size."""
    return ok(b"%d\n" % size, SIZE, 409)


_NAMES = itertools.count()


def _key() -> CosignatureVerifier:
    """A key for a scripted witness: each one its own name (the quorum counts names)."""
    name = f"witness.example/scripted{next(_NAMES)}"
    return Cosigner(name, PrivateKey.generate(Algorithm.ED25519)).verifier()


class InFlight:
    """Counts the add-checkpoint requests the scripted witnesses hold open at once."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self.now = 0
        self.most = 0
        self.contacted = 0

    def arrive(self) -> None:
        with self._cond:
            self.now += 1
            self.contacted += 1
            self.most = max(self.most, self.now)
            self._cond.notify_all()

    def leave(self) -> None:
        with self._cond:
            self.now -= 1

    def wait_for(self, contacted: int, timeout: float) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: self.contacted >= contacted, timeout)


@dataclass
class Gate:
    """Holds each gated answer until ``parties`` requests arrived (or 10 s passed): with the
    witnesses asked one after another, the first would answer with only itself arrived."""

    flight: InFlight
    parties: int
    seen_at_answer: list[int] = field(default_factory=list)

    def __call__(self, answer: Answer) -> Answer:
        def gated(conn: socket.socket, stop: threading.Event) -> None:
            self.flight.arrive()
            try:
                self.flight.wait_for(self.parties, 10)
                self.seen_at_answer.append(self.flight.contacted)
                answer(conn, stop)
            finally:
                self.flight.leave()

        return gated


class Hung:
    """A witness that accepts the request and never answers; it notes whether the client
    closed the connection (gave up) before the server stopped."""

    def __init__(self, flight: InFlight | None = None, then: Answer | None = None) -> None:
        self.flight = flight
        self.then = then
        self.contacted = threading.Event()
        self.given_up = threading.Event()
        self.release = threading.Event()

    def __call__(self, conn: socket.socket, stop: threading.Event) -> None:
        if self.flight is not None:
            self.flight.arrive()
        self.contacted.set()
        try:
            conn.settimeout(0.05)
            while not stop.is_set():
                if self.release.is_set() and self.then is not None:
                    self.then(conn, stop)
                    return
                try:
                    if not conn.recv(1):
                        self.given_up.set()
                        return
                except TimeoutError:
                    continue
                except OSError:
                    self.given_up.set()
                    return
        finally:
            if self.flight is not None:
                self.flight.leave()


def _scripted(answer: Answer) -> HostileServer:
    return HostileServer(attacks={ADD: answer})


@dataclass
class Check:
    log: Log
    refused: list[str]
    witnessing: CheckpointWitnessing


@contextlib.contextmanager
def _check(
    log: Log, endpoints: list[WitnessEndpoint], quorum: int, timeout: float
) -> Iterator[Check]:
    refused: list[str] = []
    witnessing = CheckpointWitnessing(
        log, endpoints, quorum, timeout=timeout, clock=lambda: NOW, refuse=refused.append
    )
    try:
        yield Check(log, refused, witnessing)
    finally:
        witnessing.close()


@pytest.fixture
def log_key() -> PrivateKey:
    return PrivateKey.generate(Algorithm.ED25519)


@pytest.fixture
def log(log_key: PrivateKey) -> Iterator[Log]:
    """The log as restored: size 2 (its first two entries)."""
    restored = grown(log_key, entries(2))
    yield restored
    restored.close()


def _real_witness(log_key: PrivateKey, cosigned: int, name: str) -> Witness:
    """A witness of the log that cosigned its tree at ``cosigned`` (the log had grown to it
    before it was restored at 2)."""
    full = grown(log_key, entries(2), entries(cosigned - 2, 2)) if cosigned > 2 else None
    source = full or grown(log_key, entries(2))
    try:
        witness = Witness(
            name,
            [Cosigner(name, PrivateKey.generate(Algorithm.ED25519))],
            [WitnessedLog(ORIGIN, source.note_verifiers)],
            MemoryWitnessStore(),
            clock=lambda: NOW,
        )
        witness.add_checkpoint(AddCheckpoint(0, (), source.checkpoint()).encode())
    finally:
        source.close()
    return witness


# --- (a) asked at once; over as soon as decided; one timeout in all -----------------------


def test_every_witness_is_asked_before_any_answers(log: Log) -> None:
    """Each scripted witness holds its answer until all three requests arrived: asked one
    after another, the first would answer alone (and the check would wait 10 s per gate)."""
    flight = InFlight()
    gate = Gate(flight, 3)
    answers = [gate(_size(5)), gate(_size(5)), gate(_size(1))]
    with contextlib.ExitStack() as stack:
        servers = [stack.enter_context(_scripted(a)) for a in answers]
        endpoints = [WitnessEndpoint(s.url, _key()) for s in servers]
        with _check(log, endpoints, 2, timeout=30.0) as check, bounded(60):
            detail = check.witnessing.check_witnesses()
    assert gate.seen_at_answer == [3, 3, 3]
    assert flight.most == 3
    assert detail is not None
    assert detail.startswith(REFUSED)
    assert check.refused == [detail]
    for server in servers[:2]:
        assert f"{server.url} (size 5)" in detail
    assert servers[2].url not in detail


def test_a_quorum_ahead_holds_the_log_without_waiting_for_a_hung_witness(
    log: Log, log_key: PrivateKey
) -> None:
    """Two witnesses of three (quorum 2) ahead decide the check: it returns, the log held,
    while the third witness's request is still open (its timeout is 60 s; it was waited out
    before)."""
    hung = Hung()
    ahead = [_real_witness(log_key, 5, f"witness.example/w{i}") for i in range(2)]
    with contextlib.ExitStack() as stack:
        threads = [stack.enter_context(WitnessThread(w)) for w in ahead]
        server = stack.enter_context(_scripted(hung))
        endpoints = [
            WitnessEndpoint(t.url, w.verifiers[0]) for t, w in zip(threads, ahead, strict=True)
        ]
        endpoints.append(WitnessEndpoint(server.url, _key()))
        with _check(log, endpoints, 2, timeout=60.0) as check:
            with bounded(30, "the start check"):
                detail = check.witnessing.check_witnesses()
            assert hung.contacted.wait(10)  # (the others may have answered before it read)
            assert not hung.given_up.is_set()  # its request still open: not waited for
            assert detail is not None
            assert detail.startswith(REFUSED)
            assert check.refused == [detail]
            assert check.witnessing.witnesses_ahead == 2
            server.__exit__(None, None, None)  # the hung request ends; close need not wait


def test_answers_that_leave_no_quorum_possible_end_the_check(
    log: Log, log_key: PrivateKey, caplog: pytest.LogCaptureFixture
) -> None:
    """One witness at the log's size (it cosigns again), one behind: with the quorum 2 of 3,
    the hung third cannot make it, so the check returns (nothing held) without it; its
    answer, once it comes, is counted by the first witnessing round (a warning and the
    metric, as fewer than the quorum ahead always are)."""
    at_size = _real_witness(log_key, 2, "witness.example/at")
    late = Hung(then=_size(5))  # hangs until released, then says it is ahead
    with contextlib.ExitStack() as stack:
        thread = stack.enter_context(WitnessThread(at_size))
        behind = stack.enter_context(_scripted(_size(1)))
        server = stack.enter_context(_scripted(late))
        endpoints = [
            WitnessEndpoint(thread.url, at_size.verifiers[0]),
            WitnessEndpoint(behind.url, _key()),
            WitnessEndpoint(server.url, _key()),
        ]
        with (
            caplog.at_level(logging.WARNING, logger="ironroot.transparency"),
            _check(log, endpoints, 2, timeout=60.0) as check,
        ):
            with bounded(30, "the start check"):
                assert check.witnessing.check_witnesses() is None
            assert late.contacted.wait(10)
            assert not late.given_up.is_set()
            assert check.refused == []
            assert check.witnessing.witnesses_ahead == 0
            late.release.set()
            with bounded(30, "the first round"):
                check.witnessing.witness_once()
            assert check.witnessing.witnesses_ahead == 1
            assert check.refused == []
    warnings = [r.getMessage() for r in caplog.records]
    assert any(
        m.startswith(
            "1 of the 3 witnesses (the quorum is 2) have cosigned a tree of "
            f"log.example/witnessed that the local one (size 2) does not extend: {server.url} "
            "(size 5); fewer than the quorum (2)"
        )
        for m in warnings
    ), warnings


def test_witnesses_that_never_answer_cost_one_timeout_in_all(
    log: Log, caplog: pytest.LogCaptureFixture
) -> None:
    """Two witnesses that accept and never answer and one that trickles its headers a byte
    at a time (no single wait ever times out): all three requests are open together, and the
    check ends at its one deadline (``witness_timeout``, said in the warning), each witness
    counted as telling nothing. Before, each request's own deadline was four timeouts (and
    the check waited for it)."""
    flight = InFlight()
    hung = [Hung(flight), Hung(flight)]

    def trickling(conn: socket.socket, stop: threading.Event) -> None:
        flight.arrive()
        try:
            trickle_head(0.05)(conn, stop)
        finally:
            flight.leave()

    with contextlib.ExitStack() as stack:
        servers = [stack.enter_context(_scripted(a)) for a in (*hung, trickling)]
        endpoints = [WitnessEndpoint(s.url, _key()) for s in servers]
        with (
            caplog.at_level(logging.WARNING, logger="ironroot.transparency"),
            _check(log, endpoints, 2, timeout=1.0) as check,
            bounded(30, "the start check"),
        ):
            assert check.witnessing.check_witnesses() is None
            assert check.refused == []
            assert check.witnessing.witnesses_ahead == 0
    assert flight.most == 3
    said = [r.getMessage() for r in caplog.records]
    for server in servers:
        # the check's deadline, or the request's own (the same one timeout) just before it;
        # for a hung witness also httpx's wait for its first byte (one timeout too), which
        # the trickling one never lets run out
        unreached = (
            f"the witness {server.url} did not say what it cosigned of log.example/witnessed: "
            f"cannot reach the witness {server.url}: "
        )
        either = {
            f"the witness {server.url} did not answer within witness_timeout (1 s) at start: "
            "it tells nothing of log.example/witnessed (not counted as ahead)",
            f"{unreached}the answer took longer than 1 s",
        }
        if server is not servers[-1]:
            either.add(f"{unreached}timed out")
        assert either & set(said), said


# --- (b) answers that prove nothing are not ahead -----------------------------------------


def _problem(status: int, detail: str) -> Answer:
    problem = Problem(title="Error", detail=detail, extra={"code": "storage"})
    return ok(
        problem.to_cbor(), {"Content-Type": "application/concise-problem-details+cbor"}, status
    )


# each: the scripted answer, the error the client raises (type, code, detail with {url})
BAD_ANSWERS: dict[str, tuple[Answer, type[IronrootError], str, str]] = {
    "409 size not a decimal": (
        ok(b"five\n", SIZE, 409),
        StorageError,
        "malformed-answer",
        "the witness {url} answered a text/x.tlog.size body this client cannot read: "
        "the witness's tree size is not an ASCII decimal",
    ),
    "409 size without its newline": (
        ok(b"5", SIZE, 409),
        StorageError,
        "malformed-answer",
        "the witness {url} answered a text/x.tlog.size body this client cannot read: "
        "a text/x.tlog.size body is a decimal and a newline",
    ),
    "409 size too large": (
        ok(b"99999999999999999999\n", SIZE, 409),
        StorageError,
        "malformed-answer",
        "the witness {url} answered a text/x.tlog.size body this client cannot read: "
        "the witness's tree size is too large",
    ),
    "200 not signature lines": (
        ok(b"cosigned, trust me\n", {"Content-Type": "text/plain"}),
        StorageError,
        "malformed-answer",
        "the witness {url} answered cosignatures this client cannot read: every line of a "
        "witness's answer is a note signature line",
    ),
    "500": (
        _problem(500, "the disk is full"),
        StorageError,
        "remote-problem",
        "the witness {url} answered 500: the disk is full",
    ),
    "502": (
        ok(b"bad gateway", {"Content-Type": "text/plain"}, 502),
        StorageError,
        "remote-problem",
        "the witness {url} answered 502: bad gateway",
    ),
    "503": (
        ok(b"restarting", {"Content-Type": "text/plain", "Retry-After": "3"}, 503),
        StoreUnavailable,
        "store-unavailable",
        "the witness {url} answered 503: restarting",
    ),
}


def _bad_answer_check(
    log: Log, answer: Answer, caplog: pytest.LogCaptureFixture
) -> tuple[str, int, list[str], list[str]]:
    """Witnesses ahead, ``answer`` and behind (quorum 2 of 3): counted as ahead, the answer
    would hold the log (whichever two answer first, it is one of them). The URL of the one
    that answers it, how many are ahead once every answer is in (the check may be decided
    before the one ahead answers: a round counts it), what was refused, what was logged."""
    with (
        _scripted(_size(5)) as ahead,
        _scripted(answer) as bad,
        _scripted(_size(1)) as behind,
    ):
        endpoints = [WitnessEndpoint(s.url, _key()) for s in (ahead, bad, behind)]
        with (
            caplog.at_level(logging.WARNING, logger="ironroot.transparency"),
            _check(log, endpoints, 2, timeout=10.0) as check,
            bounded(60, "the start check"),
        ):
            assert check.witnessing.check_witnesses() is None
            assert check.witnessing.refused is None
            check.witnessing.witness_once()
            return (
                bad.url,
                check.witnessing.witnesses_ahead,
                check.refused,
                [r.getMessage() for r in caplog.records],
            )


@pytest.mark.parametrize("case", sorted(BAD_ANSWERS))
def test_an_answer_that_proves_nothing_is_not_counted_as_ahead(
    case: str, log: Log, caplog: pytest.LogCaptureFixture
) -> None:
    answer, error, code, detail = BAD_ANSWERS[case]
    url, ahead, refused, said = _bad_answer_check(log, answer, caplog)
    assert refused == []
    assert ahead == 1
    expected = detail.format(url=url)
    assert f"the witness {url} did not say what it cosigned of {ORIGIN}: {expected}" in said
    # the client's own error for that answer, exactly
    with (
        _scripted(answer) as server,
        WitnessClient(server.url, timeout=10.0) as client,
        pytest.raises(IronrootError) as caught,
    ):
        client.add_checkpoint(log.checkpoint(), 2)
    assert type(caught.value) is error
    assert caught.value.code == code
    assert caught.value.exit_code == 1
    assert caught.value.detail == detail.format(url=server.url)


@pytest.mark.parametrize("status", [301, 302, 307, 308])
def test_a_redirect_is_not_followed_and_not_counted(
    status: int, log: Log, caplog: pytest.LogCaptureFixture
) -> None:
    """A witness redirecting add-checkpoint to one that says it is ahead: the redirect is
    not followed (the target is never asked), and the witness told nothing; the client's
    error is ``ConfigError`` ``redirect`` (exit 2) naming where it points, as the log
    fetcher's."""
    with _scripted(_size(5)) as target:
        url, ahead, refused, said = _bad_answer_check(
            log, redirect(f"{target.url}/{ADD}", status), caplog
        )
        assert target.requests == []
        assert refused == []
        assert ahead == 1
        expected = f"the witness {url} did not say what it cosigned of {ORIGIN}: " + _redirected(
            url, status, f"{target.url}/{ADD}"
        )
        assert expected in said
        with (
            _scripted(redirect(f"{target.url}/{ADD}", status)) as server,
            WitnessClient(server.url, timeout=10.0) as client,
            pytest.raises(IronrootError) as caught,
        ):
            client.add_checkpoint(log.checkpoint(), 2)
        assert target.requests == []
    assert type(caught.value) is ConfigError
    assert caught.value.code == "redirect"
    assert caught.value.exit_code == 2
    assert caught.value.detail == _redirected(server.url, status, f"{target.url}/{ADD}")


def _redirected(url: str, status: int, where: str) -> str:
    return (
        f"the witness {url} answered {status}, a redirect to {where}: a witness is asked only "
        "at its URL, no redirect is followed; if the witness moved, give its new URL"
    )


def test_a_cosignature_by_another_key_proves_nothing(
    log: Log, log_key: PrivateKey, caplog: pytest.LogCaptureFixture
) -> None:
    """A real witness at the log's size cosigns again, but with a key other than the one the
    service names for it (same name): its 200 is no answer of that witness; with the two
    others ahead and behind, nothing is held and the one ahead is a warning."""
    witness = _real_witness(log_key, 2, "witness.example/at")
    impostor = Cosigner("witness.example/at", PrivateKey.generate(Algorithm.ED25519))
    with (
        _scripted(_size(5)) as ahead,
        WitnessThread(witness) as thread,
        _scripted(_size(1)) as behind,
    ):
        endpoints = [
            WitnessEndpoint(ahead.url, _key()),
            WitnessEndpoint(thread.url, impostor.verifier()),
            WitnessEndpoint(behind.url, _key()),
        ]
        with (
            caplog.at_level(logging.WARNING, logger="ironroot.transparency"),
            _check(log, endpoints, 2, timeout=10.0) as check,
            bounded(60, "the start check"),
        ):
            assert check.witnessing.check_witnesses() is None
            check.witnessing.witness_once()  # counts an answer the decided check left out
            assert check.refused == []
            assert check.witnessing.witnesses_ahead == 1
        with (
            WitnessClient(thread.url, verifiers=(impostor.verifier(),)) as client,
            pytest.raises(InsufficientCosignatures) as caught,
        ):
            client.add_checkpoint(log.checkpoint(), 2)
    detail = f"the witness {thread.url} answered no cosignature from its configured keys"
    assert caught.value.detail == detail
    said = [r.getMessage() for r in caplog.records]
    assert f"the witness {thread.url} did not say what it cosigned of {ORIGIN}: {detail}" in said


def test_a_quorum_that_proves_the_log_behind_still_holds_it_beside_bad_answers(
    log: Log, log_key: PrivateKey
) -> None:
    """Bad answers do not water the proof down: two real witnesses ahead among a 500 and a
    malformed 409 (quorum 2 of 4) hold the log, naming only the two."""
    ahead = [_real_witness(log_key, 5, f"witness.example/w{i}") for i in range(2)]
    with contextlib.ExitStack() as stack:
        threads = [stack.enter_context(WitnessThread(w)) for w in ahead]
        bad = [
            stack.enter_context(_scripted(a))
            for a in (_problem(500, "down"), ok(b"x\n", SIZE, 409))
        ]
        endpoints = [
            WitnessEndpoint(t.url, w.verifiers[0]) for t, w in zip(threads, ahead, strict=True)
        ]
        endpoints += [WitnessEndpoint(s.url, _key()) for s in bad]
        with _check(log, endpoints, 2, timeout=10.0) as check, bounded(60, "the start check"):
            detail = check.witnessing.check_witnesses()
    assert detail is not None
    assert detail.startswith(
        "2 of the 4 witnesses (the quorum is 2) have cosigned a tree of log.example/witnessed "
        "that the local one (size 2) does not extend: "
        f"{threads[0].url} (size 5), {threads[1].url} (size 5). "
    )
    assert check.refused == [detail]
