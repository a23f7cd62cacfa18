"""What a log's witness client reads from a hostile or broken witness: never more than the
largest answer it could use."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from witness_testkit import NOW, ORIGIN, WITNESS, entries, grown, make_witness

from hostile_http import HostileServer, bounded, endless_body, ok
from ironroot.cose import Problem
from ironroot.crypto import Algorithm, PrivateKey
from ironroot.errors import ConfigError, StorageError, StoreUnavailable
from ironroot.http import ServerThread
from ironroot.transparency import CheckpointWitnessing, WitnessEndpoint
from ironroot.witness import (
    Cosigner,
    MemoryWitnessStore,
    Witness,
    WitnessClient,
    WitnessedLog,
    WitnessThread,
    monitoring_path,
)


def test_an_endless_answer_is_cut_off_after_a_mebibyte() -> None:
    sent = 0

    def handler(request: httpx.Request) -> httpx.Response:
        def chunks() -> Iterator[bytes]:
            nonlocal sent
            for _ in range(64):
                sent += 1 << 20
                yield b"\xe2\x80\x94 w.example AAAA\n" * (1 << 16)

        return httpx.Response(200, content=chunks())

    log = grown(PrivateKey.generate(Algorithm.ED25519), entries(2))
    try:
        with WitnessClient("https://w.example", transport=httpx.MockTransport(handler)) as client:
            with pytest.raises(StorageError, match="more than 1048576 bytes"):
                client.add_checkpoint(log.checkpoint(), 0)
            with pytest.raises(StorageError, match="more than 1048576 bytes"):
                client.latest(log.origin)
    finally:
        log.close()
    assert sent < 2 * (4 << 20)  # two requests, each stopped near the limit, not 64 MiB each


@pytest.mark.integration
def test_a_witness_repeating_its_cosignature_cannot_hold_up_publication() -> None:
    """A witness whose answer repeats its valid cosignature line 99 times: the line counts
    once, and the note the service publishes holds it once (99 copies and the others' lines
    would pass the 100 signatures a note may have, and nothing would ever be published)."""
    log = grown(PrivateKey.generate(Algorithm.ED25519), entries(3))

    def witness(name: str) -> Witness:
        cosigner = Cosigner(name, PrivateKey.generate(Algorithm.ED25519))
        logs = [WitnessedLog(ORIGIN, log.note_verifiers)]
        return Witness(name, [cosigner], logs, MemoryWitnessStore(), clock=lambda: NOW)

    honest, repeating = witness(WITNESS), witness("witness.example/repeats")

    async def add_checkpoint(request: Request) -> Response:
        lines = repeating.add_checkpoint(await request.body())
        return Response("".join(line.encode() for line in lines) * 99, media_type="text/plain")

    app = Starlette(routes=[Route("/add-checkpoint", add_checkpoint, methods=["POST"])])
    try:
        with WitnessThread(honest) as one, ServerThread(app) as two:
            endpoints = [
                WitnessEndpoint(one.url, honest.verifiers[0]),
                WitnessEndpoint(two.url, repeating.verifiers[0]),
            ]
            witnessing = CheckpointWitnessing(log, endpoints, 1, clock=lambda: NOW)
            try:
                assert witnessing.witness_once()
                published = witnessing.published()
            finally:
                witnessing.close()
            with WitnessClient(two.url, verifiers=repeating.verifiers) as client:
                assert len(client.add_checkpoint(log.checkpoint(), 3)) == 1
    finally:
        log.close()
    assert published is not None
    assert published.count(b"\xe2\x80\x94 witness.example/repeats ") == 1


@pytest.mark.integration
def test_a_witness_that_moved_on_to_a_smaller_size_is_no_fork(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A witness whose 409s name a size below the log's (another submitter got there first,
    between the service's two tries) has seen nothing but this log's tree: a warning, never
    the error that says it saw another tree."""
    log = grown(PrivateKey.generate(Algorithm.ED25519), entries(3), entries(8, 3))
    key = Cosigner(WITNESS, PrivateKey.generate(Algorithm.ED25519)).verifier()
    sizes = iter([3, 5])

    async def add_checkpoint(request: Request) -> Response:
        size = next(sizes)
        return Response(b"%d\n" % size, 409, headers={"Content-Type": "text/x.tlog.size"})

    app = Starlette(routes=[Route("/add-checkpoint", add_checkpoint, methods=["POST"])])
    try:
        with ServerThread(app) as server:
            witnessing = CheckpointWitnessing(log, [WitnessEndpoint(server.url, key)], 1)
            try:
                with caplog.at_level(logging.INFO, logger="ironroot.transparency"):
                    assert not witnessing.witness_once()
            finally:
                witnessing.close()
    finally:
        log.close()
    assert [r.levelno for r in caplog.records] == [logging.WARNING]
    assert "cosigned size 5 of log.example/witnessed meanwhile" in caplog.records[0].getMessage()


def test_a_cosignature_dated_zero_is_not_taken_for_one() -> None:
    """tlog-witness: a witness's cosignature MUST NOT omit its timestamp. A line dated zero
    by the witness's own key verifies as a signature, yet every quorum check ignores it: the
    client taking it wrote out a checkpoint as cosigned that no verifier would accept."""
    import struct

    from ironroot.errors import InsufficientCosignatures
    from ironroot.log import Note, NoteSignature
    from ironroot.witness import cosignature_v1_message

    key = PrivateKey.generate(Algorithm.ED25519)
    verifier = Cosigner(WITNESS, key).verifier()
    log = grown(PrivateKey.generate(Algorithm.ED25519), entries(2))
    body = Note.parse(log.checkpoint()).body
    undated = struct.pack(">Q", 0) + key.sign(cosignature_v1_message(body, 0))
    answer = NoteSignature(WITNESS, verifier.key_id, undated).encode().encode()

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=answer)

    transport = httpx.MockTransport(handler)
    try:
        with (
            WitnessClient("https://w.example", verifiers=(verifier,), transport=transport) as c,
            pytest.raises(InsufficientCosignatures, match="dated zero"),
        ):
            c.add_checkpoint(log.checkpoint(), 0)
    finally:
        log.close()


def test_no_message_or_log_line_shows_the_password_of_the_witness_url() -> None:
    # The witness's URL is the operator's, and may carry user:password@ for a proxy's basic
    # auth: the client's messages (and the log lines naming it, by its url) leave that out.
    latest = monitoring_path(ORIGIN).lstrip("/")
    attacks = {latest: ok(b"down", status=500), "witness": endless_body()}
    with HostileServer(attacks=attacks) as server, bounded(60):
        given = server.url.replace("http://", "http://op:s3cr3t-pw@")
        with WitnessClient(given, timeout=1.0) as client:
            with pytest.raises(StorageError) as refused:
                client.latest(ORIGIN)
            with pytest.raises(StorageError) as too_large:
                client.about()
    for caught in (refused, too_large):
        assert type(caught.value) is StorageError
        assert caught.value.detail.startswith(f"the witness {server.url} answered ")
        assert "s3cr3t-pw" not in caught.value.detail
    assert client.url == server.url  # what CheckpointWitnessing's log lines name it by
    assert server.requests == [latest, "witness"]


@pytest.mark.parametrize("status", [400, 413])
def test_a_witness_refusing_the_request_is_its_refusal_not_the_callers_input(status: int) -> None:
    """A real witness answering 400 or 413 refuses what the client sent: a remote refusal
    (``StorageError`` ``remote-problem``, exit 1, as the transparency client's
    ``RemoteProblem``) with the witness's problem detail. It was ``MalformedInput`` (exit 2),
    as if the caller's own input had not parsed."""
    log_key = PrivateKey.generate(Algorithm.ED25519)
    log = grown(log_key, entries(3))
    witness = make_witness(log_key)
    note = log.checkpoint()
    old, sent = (12, note) if status == 400 else (0, note + b"x" * (256 * 1024))
    detail = (  # the witness's own problem detail
        "the old size 12 is larger than the checkpoint's 3"
        if status == 400
        else f"the request is {len('old 0') + 2 + len(sent)} bytes; the limit is {256 * 1024}"
    )
    try:
        with (
            WitnessThread(witness) as server,
            WitnessClient(server.url) as client,
            bounded(30),
            pytest.raises(StorageError) as refused,
        ):
            client.add_checkpoint(sent, old)
    finally:
        log.close()
    assert type(refused.value) is StorageError
    assert refused.value.code == "remote-problem"
    assert refused.value.exit_code == 1
    assert (
        refused.value.detail == f"the witness {server.url} refused the request ({status}): {detail}"
    )
    assert witness.latest(ORIGIN) is None


def test_a_witness_answering_one_line_100_times_has_it_verified_once() -> None:
    """A witness's answer of 100 copies of its valid cosignature line (as many as a note may
    carry): the client keeps the line once, and verifies it once, not 100 times."""
    from ironroot.crypto import PublicKey
    from ironroot.log import Note
    from ironroot.witness import CosignatureVerifier

    class Counting(CosignatureVerifier):
        def __init__(self, name: str, public_key: PublicKey) -> None:
            super().__init__(name, public_key)
            self.checked = 0

        def verify(self, body: bytes, signature: bytes) -> int:
            self.checked += 1
            return super().verify(body, signature)

    cosigner = Cosigner(WITNESS, PrivateKey.generate(Algorithm.ED25519))
    verifier = Counting(WITNESS, cosigner.verifier().public_key)
    log = grown(PrivateKey.generate(Algorithm.ED25519), entries(2))
    line = cosigner.cosign(Note.parse(log.checkpoint()).body, NOW)
    answer = line.encode().encode() * 100

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=answer)

    transport = httpx.MockTransport(handler)
    try:
        with WitnessClient("https://w.example", verifiers=(verifier,), transport=transport) as c:
            assert c.add_checkpoint(log.checkpoint(), 0) == (line,)
    finally:
        log.close()
    assert verifier.checked == 1


def _answering(response: httpx.Response) -> httpx.MockTransport:
    def handler(request: httpx.Request) -> httpx.Response:
        return response

    return httpx.MockTransport(handler)


def _endless(request: httpx.Request) -> httpx.Response:
    def chunks() -> Iterator[bytes]:
        for _ in range(4):
            yield b"x" * (1 << 20)

    return httpx.Response(200, content=chunks())


def test_an_answer_too_large_is_the_witness_failure_answer_too_large() -> None:
    """An answer past the client's bound is ``StorageError`` ``answer-too-large`` (exit 1),
    the code every other client of a service gives it (``service_answer``); the witness
    client's own message had the plain ``storage`` code, as if a store had failed."""
    log = grown(PrivateKey.generate(Algorithm.ED25519), entries(2))
    uses = (
        lambda c: c.add_checkpoint(log.checkpoint(), 0),
        lambda c: c.latest(log.origin),
        lambda c: c.about(),
    )
    try:
        with WitnessClient("https://w.example", transport=httpx.MockTransport(_endless)) as c:
            for use in uses:
                with pytest.raises(StorageError) as caught:
                    use(c)
                assert type(caught.value) is StorageError
                assert caught.value.code == "answer-too-large"
                assert caught.value.exit_code == 1
                assert caught.value.detail.startswith("the witness https://w.example answered ")
                assert caught.value.detail.endswith(" with more than 1048576 bytes")
    finally:
        log.close()


def test_an_answer_in_a_coding_the_client_cannot_undo_is_the_witness_failure() -> None:
    """A witness answering in a ``Content-Encoding`` the bounded reader does not undo (``br``)
    failed (``StorageError`` ``malformed-answer``, exit 1, as every other client's): it was
    ``MalformedInput`` (exit 2), as if the caller's own input had not parsed."""
    latest = monitoring_path(ORIGIN)
    attacks = {latest: ok(b"\x00\x01", {"Content-Encoding": "br"})}
    with (
        HostileServer(attacks=attacks) as server,
        bounded(60),
        WitnessClient(server.url, timeout=5.0) as client,
        pytest.raises(StorageError) as caught,
    ):
        client.latest(ORIGIN)
    assert type(caught.value) is StorageError
    assert caught.value.code == "malformed-answer"
    assert caught.value.exit_code == 1


@pytest.mark.parametrize("status", [500, 502, 504])
def test_a_witness_failing_is_a_remote_problem_not_a_store_of_ours(status: int) -> None:
    """A witness answering 5xx failed on its side: ``StorageError`` ``remote-problem`` (the
    code of the transparency client's ``RemoteProblem`` for a service's failing answer), with
    the witness's problem detail; it was the plain ``storage`` code of a store of our own."""
    problem = Problem(title="Storage Error", detail="the disk is full", extra={"code": "storage"})
    answer = httpx.Response(
        status,
        content=problem.to_cbor(),
        headers={"Content-Type": "application/concise-problem-details+cbor"},
    )
    log = grown(PrivateKey.generate(Algorithm.ED25519), entries(2))
    uses = (
        lambda c: c.add_checkpoint(log.checkpoint(), 0),
        lambda c: c.latest(log.origin),
        lambda c: c.about(),
    )
    try:
        with WitnessClient("https://w.example", transport=_answering(answer)) as client:
            for use in uses:
                with pytest.raises(StorageError) as caught:
                    use(client)
                assert type(caught.value) is StorageError
                assert caught.value.code == "remote-problem"
                assert caught.value.exit_code == 1
                assert caught.value.detail == (
                    f"the witness https://w.example answered {status}: the disk is full"
                )
    finally:
        log.close()


@pytest.mark.parametrize(
    ("retry_after", "expected"), [("7", 7), (None, 1), ("soon", 1), ("99999", 1)]
)
def test_a_witness_unavailable_says_when_to_ask_again(
    retry_after: str | None, expected: int
) -> None:
    """A witness answering 503 cannot answer now: ``StoreUnavailable`` (a ``RetryLater``, code
    ``store-unavailable``) with the witness's ``Retry-After`` when it is a number of seconds
    (read as the transparency client reads it: at most an hour), else 1 s."""
    headers = {"Content-Type": "text/plain"}
    if retry_after is not None:
        headers["Retry-After"] = retry_after
    answer = httpx.Response(503, content=b"restarting", headers=headers)
    log = grown(PrivateKey.generate(Algorithm.ED25519), entries(2))
    uses = (
        lambda c: c.add_checkpoint(log.checkpoint(), 0),
        lambda c: c.latest(log.origin),
        lambda c: c.about(),
    )
    try:
        with WitnessClient("https://w.example", transport=_answering(answer)) as client:
            for use in uses:
                with pytest.raises(StoreUnavailable) as caught:
                    use(client)
                assert caught.value.code == "store-unavailable"
                assert caught.value.retry_after == expected
                assert caught.value.exit_code == 1
                assert caught.value.detail == (
                    "the witness https://w.example answered 503: restarting"
                )
    finally:
        log.close()


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("text/plain; charset=utf-8", b"roots do not match\n"),  # another witness's root mismatch
        ("", b""),
    ],
)
def test_a_409_that_is_no_size_is_the_witness_s_root_mismatch(
    content_type: str, body: bytes
) -> None:
    """c2sp.org/tlog-witness answers a different root at the cosigned size with 409 and no
    text/x.tlog.size body: the witness's refusal of the checkpoint, not the caller's
    malformed input (exit 2) and not a size to retry from."""
    from ironroot.errors import InconsistentCheckpoint

    def handler(request: httpx.Request) -> httpx.Response:
        headers = {"Content-Type": content_type} if content_type else {}
        return httpx.Response(409, content=body, headers=headers)

    log = grown(PrivateKey.generate(Algorithm.ED25519), entries(2))
    try:
        transport = httpx.MockTransport(handler)
        with (
            WitnessClient("https://w.example", transport=transport) as client,
            pytest.raises(InconsistentCheckpoint) as info,
        ):
            client.add_checkpoint(log.checkpoint(), 2)
    finally:
        log.close()
    assert type(info.value) is InconsistentCheckpoint
    assert "409" in info.value.detail


@pytest.mark.parametrize(
    ("location", "where"),
    [
        (
            "https://elsewhere.example/w/add-checkpoint",
            "https://elsewhere.example/w/add-checkpoint",
        ),
        ("/moved?token=s3cret#frag", "https://w.example/moved?(hidden)"),
        ("https://u:pw@elsewhere.example:8443/w", "https://elsewhere.example:8443/w"),
        (None, "nowhere (no Location)"),
    ],
)
@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_a_redirecting_witness_is_a_config_error_naming_where_never_followed(
    status: int, location: str | None, where: str
) -> None:
    """Every request of the client (add-checkpoint, the monitoring read, ``/witness``) answered
    with a redirect: ``ConfigError`` ``redirect`` (exit 2, as the log fetcher's), naming the
    status and where it points without its query or user information; nothing is asked of
    the target. It was ``StorageError`` ``storage`` ("answered 302"), which named neither."""
    asked: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        asked.append(f"{request.url.host}{request.url.path}")
        headers = {"Location": location} if location is not None else {}
        return httpx.Response(status, headers=headers)

    log = grown(PrivateKey.generate(Algorithm.ED25519), entries(2))
    expected = (
        f"the witness https://w.example answered {status}, a redirect to {where}: a witness is "
        "asked only at its URL, no redirect is followed; if the witness moved, give its new URL"
    )
    try:
        with WitnessClient("https://w.example", transport=httpx.MockTransport(handler)) as client:
            for call in (
                lambda: client.add_checkpoint(log.checkpoint(), 0),
                lambda: client.latest(log.origin),
                client.about,
            ):
                with pytest.raises(ConfigError) as caught:
                    call()
                assert type(caught.value) is ConfigError
                assert caught.value.code == "redirect"
                assert caught.value.exit_code == 2
                assert caught.value.detail == expected
    finally:
        log.close()
    assert [a.split("/")[0] for a in asked] == ["w.example"] * 3
