"""What a third party verifying a log offline is fed by a hostile server or mirror: notes with
confusing signature lines, checkpoints spelled to slip through, tiles that lag the checkpoint,
redirects to another host, bodies larger than any log resource. Each must fail with its
typed error (or, where the spec says so, be ignored), never be accepted."""

from __future__ import annotations

import gzip
import hashlib
import json
import time
from collections.abc import Iterator

import httpx
import pytest
from log_testkit import (
    ORIGIN,
    LogBackedFetcher,
    ed25519_key,
    entries,
    fill,
    fill_before_start,
    signer,
)

from ironroot.errors import (
    BadSignature,
    ConfigError,
    LimitExceeded,
    MalformedInput,
    PayloadTooLarge,
    UnknownIssuer,
    Unreachable,
    VerificationFailed,
)
from ironroot.log import (
    Checkpoint,
    HttpLogFetcher,
    Log,
    LogIdentity,
    Note,
    NoteSignature,
    open_checkpoint,
    open_note,
    sign_checkpoint,
    sign_note,
    verify_remote_log,
)

KEY = ed25519_key()
OTHER = ed25519_key()
ROOT = hashlib.sha256(b"root").digest()


# --- signed notes -----------------------------------------------------------------------------


def test_a_second_line_by_the_same_key_cannot_hide_a_bad_one() -> None:
    # Whether the bad line comes first or last, every line of a known key is verified: a
    # verifier never gets to pick the line that verifies.
    note = Note.parse(sign_note(b"hello\n", [signer(KEY)]))
    good = note.signatures[0]
    bad = NoteSignature(good.name, good.key_id, bytes(64))
    for lines in ((good, bad), (bad, good)):
        with pytest.raises(BadSignature):
            open_note(Note(note.body, lines).encode(), [signer(KEY).verifier()])


def test_lines_by_unknown_keys_before_the_trusted_one_are_ignored() -> None:
    text = sign_note(b"hello\n", [signer(OTHER, "a.example"), signer(OTHER), signer(KEY)])
    assert open_note(text, [signer(KEY).verifier()]) == b"hello\n"
    # a line under the trusted name with another key id is someone else's: ignored too, and
    # it does not count as the trusted key's signature
    only_other = sign_note(b"hello\n", [signer(OTHER)])
    with pytest.raises(UnknownIssuer):
        open_note(only_other, [signer(KEY).verifier()])


@pytest.mark.parametrize("size", ["+3", "03", " 3", "3 ", "0x3", "3.0", "\u0663", "3\u00a0", "-0"])
def test_a_tree_size_has_one_spelling(size: str) -> None:
    root = Checkpoint(ORIGIN, 3, ROOT).encode().split(b"\n")[2]
    body = f"{ORIGIN}\n{size}\n".encode() + root + b"\n"
    with pytest.raises(MalformedInput):
        open_checkpoint(sign_note(body, [signer(KEY)]), [signer(KEY).verifier()])


def test_a_tree_size_beyond_2_63_is_a_limit() -> None:
    root = Checkpoint(ORIGIN, 3, ROOT).encode().split(b"\n")[2]
    body = f"{ORIGIN}\n{1 << 63}\n".encode() + root + b"\n"
    with pytest.raises(LimitExceeded):
        open_checkpoint(sign_note(body, [signer(KEY)]), [signer(KEY).verifier()])


@pytest.mark.parametrize(
    "origin", [ORIGIN + " ", " " + ORIGIN, ORIGIN + "\u00a0", ORIGIN.replace("e", "\u0435", 1)]
)
def test_an_origin_that_only_looks_the_same_is_another_origin(origin: str) -> None:
    # Signed by the trusted key and well formed, but for an origin that is not the expected
    # one byte for byte (a trailing space, a no-break space, a Cyrillic e).
    text = sign_checkpoint(Checkpoint(origin, 3, ROOT), [signer(KEY)])
    assert open_checkpoint(text, [signer(KEY).verifier()]).origin == origin
    with pytest.raises(UnknownIssuer):
        open_checkpoint(text, [signer(KEY).verifier()], origin=ORIGIN)


def test_an_extension_line_is_signed_like_the_rest() -> None:
    text = sign_checkpoint(Checkpoint(ORIGIN, 3, ROOT, ("ext one",)), [signer(KEY)])
    assert open_checkpoint(text, [signer(KEY).verifier()]).extensions == ("ext one",)
    body, sig = text.split(b"\n\n")
    for changed in (
        body + b"\next two",
        body.replace(b"ext one", b"ext 1"),
        body[: -len("\next one")],
    ):
        with pytest.raises(BadSignature):
            open_checkpoint(changed + b"\n\n" + sig, [signer(KEY).verifier()])


# --- a served log -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def logs() -> Iterator[tuple[Log, Log]]:
    """The same log at two sizes: 300 entries (the checkpoint) and its first 260 (the tiles a
    lagging mirror still serves)."""
    big = Log.open_memory(origin=ORIGIN, note_signers=[signer(KEY)], max_batch=300)
    small = Log.open_memory(origin=ORIGIN, note_signers=[signer(KEY)], max_batch=300)
    fill_before_start(big, entries(300))
    fill_before_start(small, entries(260))
    yield big, small
    big.close()
    small.close()


def test_a_checkpoint_newer_than_the_tiles_fails(logs: tuple[Log, Log]) -> None:
    big, small = logs

    class Lagging(LogBackedFetcher):
        def fetch(self, path: str, *, accept: str | None = None) -> bytes:
            if path == "checkpoint":
                return big.checkpoint()
            return super().fetch(path, accept=accept)

    assert verify_remote_log(LogBackedFetcher(small)).size == 260
    with pytest.raises(VerificationFailed):
        verify_remote_log(Lagging(small))


def test_a_served_checkpoint_with_an_unknown_key_s_line_twice_verifies(
    logs: tuple[Log, Log],
) -> None:
    """c2sp.org/signed-note: lines of unknown keys are ignored, one repeated too (the client
    refused such a checkpoint as malformed)."""
    _, small = logs

    class Cosigned(LogBackedFetcher):
        def fetch(self, path: str, *, accept: str | None = None) -> bytes:
            if path != "checkpoint":
                return super().fetch(path, accept=accept)
            note = Note.parse(small.checkpoint())
            other = signer(OTHER, "witness.example")
            line = NoteSignature(other.name, other.key_id, other.sign(note.body))
            return Note(note.body, (line, *note.signatures, line)).encode()

    assert verify_remote_log(Cosigned(small)).size == 260


def test_tiles_of_another_log_under_the_same_key_fail(logs: tuple[Log, Log]) -> None:
    big, _ = logs
    other = Log.open_memory(origin=ORIGIN, note_signers=[signer(KEY)], max_batch=300)
    with other:
        fill(other, entries(300, tag=b"other"))

        class Mixed(LogBackedFetcher):
            def fetch(self, path: str, *, accept: str | None = None) -> bytes:
                if path.startswith("tile/") and not path.startswith("tile/entries"):
                    return LogBackedFetcher(other).fetch(path, accept=accept)
                return super().fetch(path, accept=accept)

        with pytest.raises(VerificationFailed, match="differs"):
            verify_remote_log(Mixed(big))


def _client(handler: object) -> httpx.Client:
    return httpx.Client(transport=httpx.MockTransport(handler))  # type: ignore[arg-type]


def test_a_redirect_to_another_host_is_not_followed(logs: tuple[Log, Log]) -> None:
    big, _ = logs
    served = LogBackedFetcher(big)
    hosts: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        hosts.append(request.url.host)
        if request.url.host == "evil.example":
            return httpx.Response(200, content=served.fetch(request.url.path.lstrip("/")))
        if request.url.path.endswith("checkpoint"):
            return httpx.Response(302, headers={"Location": "https://evil.example/checkpoint"})
        return httpx.Response(200, content=served.fetch(request.url.path.lstrip("/")))

    client = _client(handler)
    with (
        client,
        HttpLogFetcher("https://log.example", client=client) as f,
        pytest.raises(ConfigError) as info,
    ):
        verify_remote_log(f)
    assert "evil.example" not in hosts
    # a typed error naming the redirect and where it points, not a storage failure
    assert info.value.code == "redirect"
    assert "answered 302, a redirect to https://evil.example/checkpoint" in info.value.detail


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_a_redirect_is_not_followed_even_by_a_client_that_follows_them(status: int) -> None:
    """A caller's client may follow redirects for its own requests (httpx's
    ``follow_redirects=True``): the fetcher's reads still follow none."""
    hosts: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        hosts.append(request.url.host)
        if request.url.host == "evil.example":
            return httpx.Response(200, content=b"not this log's checkpoint")
        target = "//evil.example/moved/checkpoint?X-Token=SECRET#f"
        return httpx.Response(status, headers={"Location": target})

    client = httpx.Client(transport=httpx.MockTransport(handler), follow_redirects=True)
    with (
        client,
        HttpLogFetcher("https://log.example/prefix", client=client) as f,
        pytest.raises(ConfigError) as info,
    ):
        f.fetch("checkpoint")
    assert hosts == ["log.example"]
    assert info.value.code == "redirect"
    assert f"answered {status}, a redirect to https://evil.example/moved/checkpoint?(hidden)" in (
        info.value.detail
    )
    assert "SECRET" not in info.value.detail


def test_a_body_larger_than_any_log_resource_is_cut_off() -> None:
    sent = 0

    def handler(request: httpx.Request) -> httpx.Response:
        def chunks() -> Iterator[bytes]:
            nonlocal sent
            for _ in range(64):
                sent += 1 << 20
                yield bytes(1 << 20)

        return httpx.Response(200, content=chunks())

    client = _client(handler)
    with (
        client,
        HttpLogFetcher("https://log.example", client=client) as f,
        pytest.raises(PayloadTooLarge),
    ):
        f.fetch("tile/entries/000")
    assert sent < 20 << 20  # the rest of the 64 MiB was never read


def test_a_body_trickled_byte_by_byte_is_cut_off_at_the_total_deadline() -> None:
    # each byte comes well within the timeout of one wait; the whole never would
    sent = 0

    def handler(request: httpx.Request) -> httpx.Response:
        def chunks() -> Iterator[bytes]:
            nonlocal sent
            for _ in range(400):
                time.sleep(0.02)
                sent += 1
                yield b"\0"

        return httpx.Response(200, content=chunks())

    client = _client(handler)
    started = time.monotonic()
    with (
        client,
        HttpLogFetcher("https://log.example", client=client, timeout=0.1) as f,
        pytest.raises(Unreachable, match=r"took longer than 0\.4 s"),
    ):
        f.fetch("tile/0/000")
    assert time.monotonic() - started < 2.0
    assert sent < 100


@pytest.mark.parametrize(
    ("path", "encoding", "why"),
    [
        ("tile/0/001.p/44", "gzip", "the answer's compressed body ends before its stream does"),
        ("checkpoint", "gzip", "the answer's compressed body ends before its stream does"),
        ("tile/1/000.p/1", "br", "the answer's Content-Encoding 'br' is not one this client reads"),
    ],
)
def test_a_served_body_that_does_not_decode_fails_verification(
    logs: tuple[Log, Log], path: str, encoding: str, why: str
) -> None:
    """A tile or checkpoint whose compressed body is cut short, or in a coding no client
    reads, was ``MalformedInput`` (exit 2, the code of a usage error) naming no resource,
    while the same tile cut short unencoded fails verification (exit 1)."""
    big, _ = logs
    served = LogBackedFetcher(big)

    def handler(request: httpx.Request) -> httpx.Response:
        data = served.fetch(request.url.path.lstrip("/"))
        if request.url.path.lstrip("/") != path:
            return httpx.Response(200, content=iter([data]))
        body = gzip.compress(data)[:-4]
        return httpx.Response(200, content=iter([body]), headers={"Content-Encoding": encoding})

    client = _client(handler)
    with (
        client,
        HttpLogFetcher("https://log.example", client=client) as f,
        pytest.raises(VerificationFailed) as info,
    ):
        verify_remote_log(f, identity=LogIdentity(ORIGIN, (signer(KEY).verifier(),)))
    assert info.value.code == "verification-failed"
    assert info.value.detail.startswith(f"https://log.example/{path} ")
    assert why in info.value.detail


@pytest.mark.parametrize("nesting", [b"[" * 100_000, b'{"a":' * 100_000])
def test_a_transparency_configuration_nested_too_deep_is_the_logs_failure(nesting: bytes) -> None:
    """A server's configuration document nested deeper than Python's recursion limit made
    ``json.loads`` raise ``RecursionError``, which escaped ``log verify URL`` untyped. It was
    then pinned as ``MalformedInput``, the code of the caller's input (exit 2); but the
    document is the log's, as a malformed checkpoint is: ``VerificationFailed`` (exit 1),
    naming the resource."""

    class Deep:
        def fetch(self, path: str, *, accept: str | None = None) -> bytes:
            return nesting

    with pytest.raises(VerificationFailed) as info:
        verify_remote_log(Deep())
    assert type(info.value) is VerificationFailed
    assert info.value.detail == (
        ".well-known/transparency-configuration is served wrongly: "
        "the transparency configuration is not JSON"
    )


def test_a_log_is_asked_only_for_the_codings_its_reader_decodes(logs: tuple[Log, Log]) -> None:
    """httpx's default ``Accept-Encoding`` names ``br`` and ``zstd`` wherever the brotli or
    zstandard package happens to be installed, but the bounded reader decodes only gzip and
    deflate: a CDN honouring the header made every read fail (``VerificationFailed``, a
    Content-Encoding this client does not read). The reader asks for what it reads, as
    c2sp.org/tlog-tiles recommends (gzip and identity)."""
    big, _ = logs
    served = LogBackedFetcher(big)
    asked: set[str] = set()

    def handler(request: httpx.Request) -> httpx.Response:
        accept = request.headers.get("accept-encoding", "")
        asked.add(accept)
        data = served.fetch(request.url.path.lstrip("/"))
        offered = [c.strip() for c in accept.split(",")]
        for coding in ("zstd", "br"):  # what such a CDN prefers, when it is asked for
            if coding in offered:
                return httpx.Response(
                    200, content=iter([b"\x28\xb5\x2f\xfd"]), headers={"Content-Encoding": coding}
                )
        return httpx.Response(
            200, content=iter([gzip.compress(data)]), headers={"Content-Encoding": "gzip"}
        )

    # a client whose defaults are httpx's where brotli and zstandard are installed
    client = httpx.Client(
        transport=httpx.MockTransport(handler),
        headers={"Accept-Encoding": "gzip, deflate, br, zstd"},
    )
    with client, HttpLogFetcher("https://log.example", client=client) as f:
        report = verify_remote_log(f, identity=LogIdentity(ORIGIN, (signer(KEY).verifier(),)))
    assert report.root == big.root()
    assert asked == {"gzip, identity"}


def test_a_transparency_configuration_listing_too_many_keys_is_refused() -> None:
    """A hostile server's configuration may fill its 16 MiB with ~280,000 verifier keys, each
    parsed (some 8 s of CPU) before any is used: no note carries more than 100 signatures,
    so no log has more keys than that to list. The limit is the log's to keep: its reader
    fails verification (exit 1), not ``LimitExceeded`` (exit 2, the caller's input)."""
    vkey = signer(KEY).verifier().vkey
    body = json.dumps({"checkpoint_origin": ORIGIN, "checkpoint_keys": [vkey] * 101}).encode()

    class Many:
        def fetch(self, path: str, *, accept: str | None = None) -> bytes:
            return body

    with pytest.raises(VerificationFailed) as info:
        verify_remote_log(Many())
    assert type(info.value) is VerificationFailed
    assert isinstance(info.value.__cause__, LimitExceeded)  # refused before any key is parsed
    assert info.value.detail == (
        ".well-known/transparency-configuration is served wrongly: "
        "the transparency configuration lists more than 100 checkpoint keys"
    )


@pytest.mark.parametrize("coding", ["gzip", "gzip, gzip"])
def test_a_compressed_body_that_expands_past_any_resource_is_cut_off(coding: str) -> None:
    """A few KiB of gzip (or gzip inside gzip) that expand to 64 MiB: stopped at the largest
    resource's size, a stage at a time, with nothing like the whole ever in memory."""
    inner = gzip.compress(bytes(64 << 20), 9)
    body = inner if coding == "gzip" else gzip.compress(inner, 9)
    assert len(body) < 100_000

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=iter([body]), headers={"Content-Encoding": coding})

    client = _client(handler)
    with (
        client,
        HttpLogFetcher("https://log.example", client=client) as f,
        pytest.raises(PayloadTooLarge) as info,
    ):
        f.fetch("tile/entries/000")
    assert (
        info.value.detail == "https://log.example/tile/entries/000 is larger than any log resource"
    )
    again = _client(handler)
    with (
        again,
        HttpLogFetcher("https://log.example", client=again) as f,
        pytest.raises(VerificationFailed, match="checkpoint is larger than any log resource"),
    ):
        verify_remote_log(f, identity=LogIdentity(ORIGIN, (signer(KEY).verifier(),)))
