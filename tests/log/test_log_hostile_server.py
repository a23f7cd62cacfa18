"""A log reader (``HttpLogFetcher``, ``verify_remote_log``, ``ironroot log verify URL``) against
a hostile server on a real socket (tests/hostile_http.py): endless and enormous bodies, bytes
trickled past every timeout, redirects, gzip bombs, absurd ``Retry-After``s, connections
closed half way, and a log's resources served wrong. Each must end in its typed error within
the test's own timeout, holding bounded memory, asking once (no retry), and the CLI exit 1
with one line."""

from __future__ import annotations

import hashlib
import json
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from log_testkit import ORIGIN, LogBackedFetcher, ed25519_key, entries, fill_before_start, signer

from hostile_http import (
    Answer,
    HostileServer,
    bounded,
    close_mid_body,
    endless_body,
    gzip_bomb,
    huge_length,
    ok,
    redirect,
    refuse,
    retry_after,
    trickle_body,
    trickle_head,
)
from ironroot.cli import main
from ironroot.errors import (
    ConfigError,
    InconsistentCheckpoint,
    IronrootError,
    NotFound,
    PayloadTooLarge,
    StorageError,
    UnknownIssuer,
    Unreachable,
    VerificationFailed,
)
from ironroot.log import (
    Checkpoint,
    HttpLogFetcher,
    Log,
    encode_entry_bundle,
    fetch_checkpoint,
    parse_entry_bundle,
    sign_note,
    verify_remote_log,
)

KEY = ed25519_key()
SIZE = 300  # tiles 0/000, 0/001.p/44, 1/000.p/1; bundles 000 and 001.p/44


@pytest.fixture(scope="module")
def log() -> Iterator[Log]:
    log = Log.open_memory(origin=ORIGIN, note_signers=[signer(KEY)], max_batch=SIZE)
    fill_before_start(log, entries(SIZE))
    yield log
    log.close()


def _source(log: Log) -> Callable[[str], bytes | None]:
    honest = LogBackedFetcher(log)

    def source(path: str) -> bytes | None:
        try:
            return honest.fetch(path)
        except (NotFound, IronrootError):
            return None

    return source


def _signed(size: int, root: bytes) -> bytes:
    """A checkpoint note signed by the log's key, of any size (beyond what ``Checkpoint``
    takes too)."""
    line = Checkpoint(ORIGIN, 1, root).encode().split(b"\n")[2]
    return sign_note(f"{ORIGIN}\n{size}\n".encode() + line + b"\n", [signer(KEY)])


# --- what one fetch is answered ---------------------------------------------------------------

_TOO_LARGE = r"is larger than any log resource"
_TOOK_TOO_LONG = r"the answer took longer than 1 s"

FETCH_ATTACKS: list[tuple[str, Answer, type[IronrootError], str]] = [
    ("endless body", endless_body(), PayloadTooLarge, _TOO_LARGE),
    ("endless chunked body", endless_body(chunked=True), PayloadTooLarge, _TOO_LARGE),
    ("Content-Length of 10^15", huge_length(), PayloadTooLarge, _TOO_LARGE),
    ("Content-Length of 2^64", huge_length(1 << 64), PayloadTooLarge, _TOO_LARGE),
    ("body trickled", trickle_body(), Unreachable, _TOOK_TOO_LONG),
    ("head trickled", trickle_head(), Unreachable, _TOOK_TOO_LONG),
    ("gzip bomb", gzip_bomb(), PayloadTooLarge, _TOO_LARGE),
    ("gzip bomb in gzip", gzip_bomb(layers=2), PayloadTooLarge, _TOO_LARGE),
    ("closed mid body", close_mid_body(bytes(1000), 10), Unreachable, r"cannot reach"),
    ("closed before any answer", refuse(), Unreachable, r"cannot reach"),
    ("redirect to itself", redirect("/checkpoint"), ConfigError, r"a redirect to http://"),
    ("redirect to file://", redirect("file:///etc/passwd", 301), ConfigError, r"file:///etc/pa"),
    ("redirect to another host", redirect("https://evil.example/c", 307), ConfigError, "evil"),
    ("429, Retry-After -1", retry_after("-1", 429), StorageError, r"answered 429$"),
    ("503, Retry-After 10^12", retry_after("1000000000000"), StorageError, r"answered 503$"),
    ("503, Retry-After 1900", retry_after("Mon, 01 Jan 1900 00:00:00 GMT"), StorageError, "503"),
    ("503, Retry-After garbage", retry_after("\x7fsoon"), StorageError, r"answered 503$"),
]


@pytest.mark.parametrize(
    ("attack", "error", "message"),
    [pytest.param(a, e, m, id=name) for name, a, e, m in FETCH_ATTACKS],
)
def test_a_hostile_answer_to_one_fetch_is_its_typed_error_once(
    attack: Answer, error: type[IronrootError], message: str
) -> None:
    with (
        HostileServer(attacks={"checkpoint": attack}) as server,
        HttpLogFetcher(server.url, timeout=0.25) as fetcher,
        bounded(15),
        pytest.raises(error, match=message),
    ):
        fetcher.fetch("checkpoint")
    assert server.requests == ["checkpoint"]  # asked once: nothing retried or followed


@pytest.mark.parametrize(
    "attack",
    [endless_body(), huge_length(), gzip_bomb(), gzip_bomb(layers=2)],
    ids=["endless", "huge length", "gzip bomb", "gzip bomb in gzip"],
)
def test_a_hostile_body_is_cut_off_in_bounded_memory(attack: Answer) -> None:
    # the bound is a few of the largest resource (a full entry bundle, 16 MiB)
    with HostileServer(attacks={"tile/entries/000": attack}) as server:
        tracemalloc.start()
        try:
            with (
                HttpLogFetcher(server.url, timeout=1.0) as fetcher,
                bounded(30),
                pytest.raises(PayloadTooLarge),
            ):
                fetcher.fetch("tile/entries/000")
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert peak < 64 << 20


# --- fetch_checkpoint: how every reader of a served log fetches its checkpoint ----------------

# What the server answers for ``checkpoint`` (``None``: a 404), and the exact detail of the
# VerificationFailed (``{url}`` the server's): the log's failure to every reader alike.
CHECKPOINT_FAILURES: dict[str, tuple[Callable[[], Answer] | None, str]] = {
    "none served": (None, "the log does not serve {url}/checkpoint"),
    "endless": (endless_body, "{url}/checkpoint is larger than any log resource"),
    "gzip bomb": (gzip_bomb, "{url}/checkpoint is larger than any log resource"),
    "size 2^63": (
        lambda: ok(_signed(1 << 63, bytes(32))),
        "{url}/checkpoint is served wrongly: the checkpoint size is too large",
    ),
    "not UTF-8": (
        lambda: ok(_signed(3, bytes(32)).replace(ORIGIN.encode(), b"\xff", 1)),
        "{url}/checkpoint is served wrongly: the signed note is not UTF-8",
    ),
}


@pytest.mark.parametrize("case", list(CHECKPOINT_FAILURES))
def test_fetch_checkpoint_refuses_what_is_no_checkpoint_as_the_log_s_failure(case: str) -> None:
    attack, detail = CHECKPOINT_FAILURES[case]
    attacks = {} if attack is None else {"checkpoint": attack()}
    with (
        HostileServer(attacks=attacks) as server,
        HttpLogFetcher(server.url, timeout=1.0) as fetcher,
        bounded(30),
        pytest.raises(VerificationFailed) as raised,
    ):
        fetch_checkpoint(fetcher, [signer(KEY).verifier()], origin=ORIGIN)
    assert type(raised.value) is VerificationFailed
    assert raised.value.exit_code == 1
    assert raised.value.detail == detail.format(url=server.url)
    assert server.requests == ["checkpoint"]


def test_fetch_checkpoint_opens_the_served_note_and_lets_its_signature_errors_through(
    log: Log,
) -> None:
    with HostileServer(_source(log)) as server, HttpLogFetcher(server.url) as fetcher, bounded(30):
        note, checkpoint = fetch_checkpoint(fetcher, [signer(KEY).verifier()], origin=ORIGIN)
        assert note == log.checkpoint()
        assert (checkpoint.origin, checkpoint.size) == (ORIGIN, SIZE)
        with pytest.raises(UnknownIssuer) as other_origin:
            fetch_checkpoint(fetcher, [signer(KEY).verifier()], origin="other.example/log")
        with pytest.raises(UnknownIssuer) as other_key:
            fetch_checkpoint(fetcher, [signer(ed25519_key()).verifier()])
    assert type(other_origin.value) is UnknownIssuer  # not wrapped as "served wrongly"
    assert type(other_key.value) is UnknownIssuer


# --- a log's resources served wrong -----------------------------------------------------------


def _tile(log: Log, path: str) -> bytes:
    data = _source(log)(path)
    assert data is not None
    return data


def _content_attacks(log: Log) -> list[tuple[str, str, bytes, type[IronrootError], str]]:
    root = hashlib.sha256(b"another root").digest()
    full = _tile(log, "tile/0/000")
    bundle = parse_entry_bundle(_tile(log, "tile/entries/000"), 256)
    return [
        ("tile of the wrong size", "tile/0/000", full[:-1], VerificationFailed, "differs"),
        ("partial tile claimed full", "tile/0/000", full[: 44 * 32], VerificationFailed, "differs"),
        # refused as it streams in, past the 8 KiB of a full tile
        (
            "tile larger than full",
            "tile/0/000",
            full + full[:32],
            VerificationFailed,
            "larger than a hash tile",
        ),
        (
            "checkpoint of size 2^63",
            "checkpoint",
            _signed(1 << 63, root),
            VerificationFailed,
            "checkpoint is served wrongly: ",
        ),
        (
            "checkpoint of size 2^64",
            "checkpoint",
            _signed(1 << 64, root),
            VerificationFailed,
            "checkpoint is served wrongly: ",
        ),
        (
            "checkpoint whose note is not UTF-8",
            "checkpoint",
            _tile(log, "checkpoint").replace(b"log.example", b"log.\xff\xfeexample", 1),
            VerificationFailed,
            "checkpoint is served wrongly: ",
        ),
        (
            "checkpoint of a size whose tiles are not served",
            "checkpoint",
            _signed(SIZE + 1, root),
            VerificationFailed,
            "the log serves neither tile/entries/001.p/45 nor tile/entries/001",
        ),
        (
            "entries that do not hash to the tiles",
            "tile/entries/000",
            encode_entry_bundle([b"forged", *bundle[1:]]),
            VerificationFailed,
            "differs",
        ),
        (
            "bundle cut to fewer entries",
            "tile/entries/000",
            encode_entry_bundle(bundle[:255]),
            VerificationFailed,
            "malformed",
        ),
        (
            "bundle with an entry claimed longer than sent",
            "tile/entries/000",
            _tile(log, "tile/entries/000")[:-1],
            VerificationFailed,
            "malformed",
        ),
    ]


_CONTENT_IDS = [
    "tile of the wrong size",
    "partial tile claimed full",
    "tile larger than full",
    "checkpoint of size 2^63",
    "checkpoint of size 2^64",
    "checkpoint whose note is not UTF-8",
    "checkpoint of a size whose tiles are not served",
    "entries that do not hash to the tiles",
    "bundle cut to fewer entries",
    "bundle with an entry claimed longer than sent",
]


@pytest.mark.parametrize("case", _CONTENT_IDS)
def test_a_log_served_wrong_fails_verification(log: Log, case: str) -> None:
    [(_, path, body, error, message)] = [c for c in _content_attacks(log) if c[0] == case]
    with (
        HostileServer(_source(log), {path: ok(body)}) as server,
        HttpLogFetcher(server.url, timeout=1.0) as fetcher,
        bounded(30),
        pytest.raises(error, match=message),
    ):
        verify_remote_log(fetcher)


def test_the_honest_log_verifies_over_the_socket(log: Log) -> None:
    with (
        HostileServer(_source(log)) as server,
        HttpLogFetcher(server.url, timeout=1.0) as fetcher,
        bounded(30),
    ):
        assert verify_remote_log(fetcher).size == SIZE


def test_a_checkpoint_that_forks_from_an_earlier_one_is_inconsistent(log: Log) -> None:
    # an earlier checkpoint the log signed at 200 with another root: a split view
    earlier = _signed(200, hashlib.sha256(b"the other branch").digest())
    with (
        HostileServer(_source(log)) as server,
        HttpLogFetcher(server.url, timeout=1.0) as fetcher,
        bounded(30),
        pytest.raises(InconsistentCheckpoint),
    ):
        verify_remote_log(fetcher, earlier_checkpoint=earlier)


# --- the CLI ----------------------------------------------------------------------------------

_CLI_ATTACKS: list[tuple[str, str, Answer]] = [
    ("endless checkpoint", "checkpoint", endless_body()),
    ("gzip bomb for a tile", "tile/0/000", gzip_bomb()),
    ("trickled bundle", "tile/entries/000", trickle_body()),
    ("closed mid bundle", "tile/entries/000", close_mid_body(bytes(4000), 100)),
    ("503 for a tile, Retry-After 10^12", "tile/0/000", retry_after("1000000000000")),
    ("checkpoint of size 2^63", "checkpoint", ok(_signed(1 << 63, bytes(32)))),
]


@pytest.mark.parametrize(
    ("path", "attack"), [pytest.param(p, a, id=name) for name, p, a in _CLI_ATTACKS]
)
def test_log_verify_of_a_hostile_url_exits_1_with_one_line(
    log: Log, path: str, attack: Answer, capsys: pytest.CaptureFixture[str]
) -> None:
    with HostileServer(_source(log), {path: attack}) as server, bounded(30):
        code = main(["log", "verify", server.url, "--deadline", "2"])
    err = capsys.readouterr().err
    assert code == 1
    assert err.startswith("ironroot: ")
    assert err.count("\n") == 1
    assert "ironroot: internal-error" not in err


def test_a_header_that_is_not_ascii_is_read_past(log: Log) -> None:
    # latin-1 bytes in a header (a superscript two): the answer is read as any other, not a
    # UnicodeEncodeError (an internal error in the CLI) while the reader rebuilds it
    body = _tile(log, "checkpoint")
    with (
        HostileServer(attacks={"checkpoint": ok(body, {"X-Note": "\xb2 \xff"})}) as server,
        HttpLogFetcher(server.url, timeout=1.0) as fetcher,
        bounded(15),
    ):
        assert fetcher.fetch("checkpoint") == body


def _reading(verb: str, url: str, out: Path) -> list[str]:
    """The command of ``verb`` reading the log at ``url`` (an export writes to ``out``)."""
    if verb == "verify":
        return ["log", "verify", url]
    return ["log", "export-tiles", str(out), "--url", url]


@pytest.mark.parametrize("verb", ["verify", "export-tiles"])
def test_reading_a_url_has_an_overall_deadline_by_default(
    log: Log,
    verb: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # No --deadline: a bundle trickled one byte at a time (each wait short, the whole weeks)
    # is cut by the default deadline; made 1 s here, the mechanism is --deadline's own.
    # export-tiles had none at all: the trickle kept it running for ever.
    import ironroot.cli._log_tiles as log_tiles

    monkeypatch.setattr(log_tiles, "LOG_READ_DEADLINE", 1.0)
    out = tmp_path / "mirror"
    with HostileServer(_source(log), {"tile/entries/000": trickle_body()}) as server, bounded(30):
        code = main(_reading(verb, server.url, out))
    err = capsys.readouterr().err
    assert code == 1, err
    assert err == (
        f"ironroot: unreachable: cannot reach {server.url}/tile/entries/000: "
        "the log was not read within 1 s\n"
    )
    assert not (out / "checkpoint").exists()


def test_export_tiles_of_a_url_gives_up_at_its_deadline(
    log: Log, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``export-tiles --url`` has ``log verify``'s ``--deadline``: a server trickling a bundle
    is the log unreachable (exit 1), and nothing is published."""
    out = tmp_path / "mirror"
    argv = ["log", "export-tiles", str(out), "--deadline", "1", "--json"]
    with HostileServer(_source(log), {"tile/entries/000": trickle_body()}) as server, bounded(30):
        code = main([*argv, "--url", server.url])
    captured = capsys.readouterr()
    assert code == 1, captured.err
    detail = f"cannot reach {server.url}/tile/entries/000: the log was not read within 1 s"
    assert captured.err == f"ironroot: unreachable: {detail}\n"
    error = json.loads(captured.out)["error"]
    assert (error["code"], error["message"]) == ("unreachable", detail)
    assert not (out / "checkpoint").exists()
    for bad in ("0", "-1", "nan", "inf"):  # the fetcher's range, as log verify's
        assert main([*argv[:4], bad, "--url", server.url]) == 2
    assert main([*argv, "--data", str(tmp_path)]) == 2  # a directory has no deadline
    assert json.loads(capsys.readouterr().out.splitlines()[-1])["error"]["code"] == "config"


@pytest.mark.parametrize("verb", ["verify", "export-tiles"])
def test_the_default_deadline_of_reading_a_url_is_the_monitors_check_timeout(
    log: Log,
    verb: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from ironroot.cli._main import build_parser

    deadlines: list[float | None] = []

    class Recorded(HttpLogFetcher):
        def __init__(self, base_url: str, **kwargs: Any) -> None:
            deadlines.append(kwargs.get("deadline"))
            super().__init__(base_url, **kwargs)

    monkeypatch.setattr("ironroot.log.HttpLogFetcher", Recorded)
    with HostileServer(_source(log)) as server, bounded(30):
        assert main(_reading(verb, server.url, tmp_path / "one")) == 0
        assert main([*_reading(verb, server.url, tmp_path / "two"), "--deadline", "600"]) == 0
    capsys.readouterr()
    argv = ["monitor", "once", "--state", "s", "--url", "http://127.0.0.1"]
    check_timeout = build_parser(argv).parse_args(argv).check_timeout
    assert deadlines == [check_timeout, 600.0]  # one reader each: its keys read within it too
    assert check_timeout == 3600.0


_CONFIG = ".well-known/transparency-configuration"
_WRONG = "is served wrongly: the transparency configuration "

# What the log serves as its transparency configuration, and the end of the line the CLI
# prints after the configuration's URL: the log's failure, never the user's input.
CONFIG_ATTACKS: dict[str, tuple[Callable[[], Answer], str]] = {
    "an error page": (lambda: ok(b"<html>a proxy's error page</html>"), _WRONG + "is not JSON"),
    "not UTF-8": (lambda: ok(b"\xff\xfe{}"), _WRONG + "is not JSON"),
    "nested too deep": (lambda: ok(b"[" * 100_000), _WRONG + "is not JSON"),
    "a list": (lambda: ok(b"[]"), _WRONG + "is not a JSON object"),
    "no keys": (
        lambda: ok(b'{"checkpoint_origin": "o", "checkpoint_keys": []}'),
        _WRONG + "has no checkpoint_keys list",
    ),
    "a key that is no vkey": (
        lambda: ok(b'{"checkpoint_origin": "o", "checkpoint_keys": ["not a vkey"]}'),
        "is served wrongly: ",
    ),
    "101 keys": (
        lambda: ok(
            b'{"checkpoint_origin": "o", "checkpoint_keys": [%s]}'
            % b", ".join([b'"%s"' % signer(KEY).verifier().vkey.encode()] * 101)
        ),
        _WRONG + "lists more than 100 checkpoint keys",
    ),
    "endless": (endless_body, "is larger than any log resource"),
    "gzip bomb": (gzip_bomb, "is larger than any log resource"),
}


@pytest.mark.parametrize("case", list(CONFIG_ATTACKS))
def test_log_verify_of_a_url_serving_a_configuration_that_is_none_exits_1(
    log: Log, case: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A configuration that does not parse was ``MalformedInput`` (exit 2: the user's input)
    naming no log; it is the log's failure, naming the configuration's URL."""
    attack, message = CONFIG_ATTACKS[case]
    with HostileServer(_source(log), {_CONFIG: attack()}) as server, bounded(30):
        code = main(["log", "verify", server.url, "--deadline", "2"])
    err = capsys.readouterr().err
    assert code == 1, err
    assert err.startswith(f"ironroot: verification-failed: {server.url}/{_CONFIG} {message}"), err
    assert err.count("\n") == 1
    assert "checkpoint" not in server.requests  # nothing read with keys that were never given


def test_a_configuration_redirect_is_still_the_users_to_fix(
    log: Log, capsys: pytest.CaptureFixture[str]
) -> None:
    with (
        HostileServer(_source(log), {_CONFIG: redirect("https://evil.example/c")}) as server,
        bounded(30),
    ):
        code = main(["log", "verify", server.url, "--deadline", "2"])
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.startswith(f"ironroot: redirect: GET {server.url}/{_CONFIG} answered 302"), err
