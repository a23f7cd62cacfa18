"""``ironroot monitor once`` against a hostile server on a real socket (tests/hostile_http.py).

The monitor first verifies an honest log of 300 entries; then the same URL turns hostile:
bodies endless or enormous or gzip bombs, bytes trickled past every timeout, a 429 or 503 with
an absurd ``Retry-After``, a connection closed half way, tiles of the wrong size, entries that
do not hash to the tiles, a checkpoint that goes back, forks, or is no checkpoint at all (not
UTF-8, a size of 2^63). Each round must end within the test's own timeout with exit 1 and
one line naming its typed error (never 2: nothing the operator typed was wrong), the verified
state on disk as it was, and a fork reported with both signed checkpoints kept as its proof.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

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
    retry_after,
    trickle_body,
    trickle_head,
)
from ironroot.cli import main
from ironroot.crypto import Algorithm, PrivateKey
from ironroot.errors import IronrootError, VerificationFailed
from ironroot.log import (
    CONFIG_PATH,
    Checkpoint,
    HttpLogFetcher,
    Log,
    NoteSigner,
    encode_entry_bundle,
    parse_entry_bundle,
    parse_tile_path,
    sign_note,
)
from ironroot.monitor import Monitor, MonitorStore
from ironroot.witness import ForkProof

ORIGIN = "hostile.example/log"
KEY = PrivateKey.generate(Algorithm.ED25519)
SIGNER = NoteSigner(ORIGIN, KEY)
VKEY = SIGNER.verifier().vkey
SIZE = 300  # tiles 0/000, 0/001.p/44, 1/000.p/1; bundles 000 and 001.p/44


def _grown(*batches: list[bytes]) -> Log:
    log = Log.open_memory(origin=ORIGIN, note_signers=[SIGNER], max_batch=SIZE)
    log.start()
    for batch in batches:
        for ticket in log.submit_many(batch):
            ticket.integrated.result(60)
    return log


def _entries(count: int, start: int = 0, tag: bytes = b"entry") -> list[bytes]:
    return [tag + b" %d" % i for i in range(start, start + count)]


@pytest.fixture(scope="module")
def logs() -> Iterator[dict[str, Log]]:
    """The honest log at 300, and grown by a bundle's worth (556); one that forks from it at
    200 and is 400 long; one of 300 other entries (another root at the same size); its first
    200 (the log gone back)."""
    made = {
        "honest": _grown(_entries(SIZE)),
        "grown": _grown(_entries(SIZE), _entries(256, SIZE)),
        "forked": _grown(_entries(200), _entries(200, 200, tag=b"evil")),
        "other root": _grown(_entries(SIZE, tag=b"other")),
        "gone back": _grown(_entries(200)),
    }
    yield made
    for log in made.values():
        log.close()


def _source(log: Log) -> Callable[[str], bytes | None]:
    def source(path: str) -> bytes | None:
        try:
            if path == "checkpoint":
                return log.checkpoint()
            if path == CONFIG_PATH:
                return json.dumps({"checkpoint_origin": ORIGIN, "checkpoint_keys": [VKEY]}).encode()
            address = parse_tile_path(path)
            if address.entries:
                return log.read_entry_bundle(address.index, address.width)
            return log.read_tile(address.level, address.index, address.width)
        except IronrootError:
            return None

    return source


def _signed(size: int, root: bytes) -> bytes:
    """A checkpoint note the log's key signed, of any size (beyond what ``Checkpoint`` takes)."""
    line = Checkpoint(ORIGIN, 1, root).encode().split(b"\n")[2]
    return sign_note(f"{ORIGIN}\n{size}\n".encode() + line + b"\n", [SIGNER])


@pytest.fixture
def watched(
    logs: dict[str, Log], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> Iterator[tuple[HostileServer, Path]]:
    """A server of the honest log, and a state that verified it at 300."""
    state = tmp_path / "monitor.sqlite3"
    with HostileServer(_source(logs["honest"])) as server:
        with bounded(30):
            assert _once(server, state) == 0
        capsys.readouterr()
        yield server, state


def _once(server: HostileServer, state: Path) -> int:
    return main(
        ["monitor", "once", "--state", str(state), "--url", server.url, "--key", VKEY,
         "--check-timeout", "2"]
    )  # fmt: skip


def _kept(state: Path) -> tuple[object, ...]:
    store = MonitorStore(state, create=False)
    try:
        kept = store.state(ORIGIN)
        assert kept is not None
        return (kept.size, kept.root, kept.note, kept.compact, kept.updated)
    finally:
        store.close()


def _tile(logs: dict[str, Log], path: str) -> bytes:
    data = _source(logs["grown"])(path)
    assert data is not None
    return data


_TOO_LARGE = "verification-failed: {url}/checkpoint is larger than any log resource\n"
_MALFORMED = "verification-failed: {url}/checkpoint is served wrongly: "


def _attacks(logs: dict[str, Log]) -> dict[str, tuple[str, Answer, str]]:
    """What the server answers for one path, and the start of the line the CLI prints (all
    of it when it ends the line; ``{url}`` the server's)."""
    # what the grown log's consistency proof from 300 and its new entries need
    full = _tile(logs, "tile/0/001")
    bundle = parse_entry_bundle(_tile(logs, "tile/entries/001"), 256)
    honest = logs["honest"].checkpoint()
    grown_root = logs["forked"].root()
    return {
        "endless checkpoint": ("checkpoint", endless_body(), _TOO_LARGE),
        "checkpoint of a petabyte": ("checkpoint", huge_length(), _TOO_LARGE),
        "gzip bomb checkpoint": ("checkpoint", gzip_bomb(), _TOO_LARGE),
        "trickled checkpoint": ("checkpoint", trickle_body(), "unreachable: "),
        "trickled head": ("checkpoint", trickle_head(), "unreachable: "),
        "checkpoint closed half way": ("checkpoint", close_mid_body(honest, 20), "unreachable: "),
        "429, Retry-After -1": ("checkpoint", retry_after("-1", 429), "storage: "),
        "503, Retry-After 10^12": ("checkpoint", retry_after("1000000000000"), "storage: "),
        "503, Retry-After 1900": (
            "checkpoint",
            retry_after("Mon, 01 Jan 1900 00:00:00 GMT"),
            "storage: ",
        ),
        "checkpoint of size 2^63": (
            "checkpoint",
            ok(_signed(1 << 63, grown_root)),
            _MALFORMED + "the checkpoint size is too large\n",
        ),
        "checkpoint of size 2^63 - 1": (
            "checkpoint",
            ok(_signed((1 << 63) - 1, grown_root)),
            "verification-failed: ",
        ),
        "checkpoint not UTF-8": (
            "checkpoint",
            ok(honest.replace(b"hostile.example", b"hostile.\xff\xfeexample", 1)),
            _MALFORMED + "the signed note is not UTF-8\n",
        ),
        "checkpoint 400 with no tiles": (
            "checkpoint",
            ok(logs["forked"].checkpoint()),
            "verification-failed: ",
        ),
        "gzip bomb tile": ("tile/0/001", gzip_bomb(layers=2), "verification-failed: "),
        "tile of the wrong size": ("tile/0/001", ok(full[:-1]), "verification-failed: "),
        "partial tile claimed full": ("tile/0/001", ok(full[: 44 * 32]), "verification-failed: "),
        "endless bundle": ("tile/entries/001", endless_body(chunked=True), "verification-failed: "),
        "trickled bundle": ("tile/entries/001", trickle_body(), "unreachable: "),
        "entries that do not hash to the tiles": (
            "tile/entries/001",
            ok(encode_entry_bundle([*bundle[:50], b"forged", *bundle[51:]])),
            "verification-failed: ",
        ),
    }


_GROWN_ATTACKS = [
    "gzip bomb tile",
    "tile of the wrong size",
    "partial tile claimed full",
    "endless bundle",
    "trickled bundle",
    "entries that do not hash to the tiles",
]
_ROUND_ATTACKS = [
    "endless checkpoint",
    "checkpoint of a petabyte",
    "gzip bomb checkpoint",
    "trickled checkpoint",
    "trickled head",
    "checkpoint closed half way",
    "429, Retry-After -1",
    "503, Retry-After 10^12",
    "503, Retry-After 1900",
    "checkpoint of size 2^63",
    "checkpoint of size 2^63 - 1",
    "checkpoint not UTF-8",
    "checkpoint 400 with no tiles",
]


@pytest.mark.parametrize("case", _ROUND_ATTACKS)
def test_a_hostile_checkpoint_answer_fails_the_round_keeping_the_state(
    logs: dict[str, Log],
    watched: tuple[HostileServer, Path],
    case: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    server, state = watched
    before = _kept(state)
    path, answer, line = _attacks(logs)[case]
    server.attacks[path] = answer
    with bounded(30):
        code = _once(server, state)
    err = capsys.readouterr().err
    assert (code, err.count("\n")) == (1, 1), err
    assert err.startswith("ironroot: " + line.format(url=server.url)), err
    assert _kept(state) == before
    assert server.requests.count(path) == 2  # the first round's, and this one's: no retry


@pytest.mark.parametrize("case", _GROWN_ATTACKS)
def test_a_grown_log_served_wrong_fails_the_round_keeping_the_state(
    logs: dict[str, Log],
    watched: tuple[HostileServer, Path],
    case: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # verified at 300, the log grown to 556: the round reads the tiles of its consistency
    # proof, then the new entries
    server, state = watched
    before = _kept(state)
    path, answer, line = _attacks(logs)[case]
    server.source = _source(logs["grown"])
    server.attacks[path] = answer
    with bounded(30):
        code = _once(server, state)
    err = capsys.readouterr().err
    assert (code, err.count("\n")) == (1, 1), err
    assert err.startswith(f"ironroot: {line}"), err
    assert _kept(state) == before
    assert server.requests.count(path) == 1  # asked once: nothing retried


def test_the_grown_log_served_right_is_verified(
    logs: dict[str, Log], watched: tuple[HostileServer, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    server, state = watched
    server.source = _source(logs["grown"])
    with bounded(30):
        assert _once(server, state) == 0
    assert capsys.readouterr().out.startswith(f"checkpoint {ORIGIN} size 556: 256 new entries")
    assert _kept(state)[0] == 556


def test_a_checkpoint_that_goes_back_is_refused_and_kept(
    logs: dict[str, Log], watched: tuple[HostileServer, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    server, state = watched
    before = _kept(state)
    server.source = _source(logs["gone back"])
    with bounded(30):
        code = _once(server, state)
    err = capsys.readouterr().err
    assert code == 1
    assert err.startswith("ironroot: inconsistent-checkpoint: ")
    assert err.count("\n") == 1
    assert _kept(state) == before
    store = MonitorStore(state, create=False)
    try:
        (behind,) = store.behind(ORIGIN)
        assert (behind.size, behind.note) == (200, logs["gone back"].checkpoint())
    finally:
        store.close()


@pytest.mark.parametrize(("fork", "sizes"), [("other root", (300, 300)), ("forked", (300, 400))])
def test_a_fork_is_reported_with_both_signed_checkpoints_kept(
    logs: dict[str, Log],
    watched: tuple[HostileServer, Path],
    fork: str,
    sizes: tuple[int, int],
    capsys: pytest.CaptureFixture[str],
) -> None:
    server, state = watched
    before = _kept(state)
    server.source = _source(logs[fork])
    with bounded(30):
        code = _once(server, state)
    out = capsys.readouterr().out
    assert code == 1
    assert out.startswith(f"FORK {ORIGIN} at {server.url}: ")
    assert _kept(state) == before
    store = MonitorStore(state, create=False)
    try:
        ((_, origin, data, _),) = store.forks()
    finally:
        store.close()
    proof = ForkProof.parse(data)
    assert (origin, proof.first, proof.second) == (
        ORIGIN,
        logs["honest"].checkpoint(),
        logs[fork].checkpoint(),
    )
    first, second = proof.verify([SIGNER.verifier()])
    assert (first.size, second.size) == sizes
    assert hashlib.sha256(first.root).digest() != hashlib.sha256(second.root).digest()


@pytest.mark.parametrize(
    ("case", "detail"),
    [
        ("endless checkpoint", "/checkpoint is larger than any log resource"),
        (
            "checkpoint of size 2^63",
            "/checkpoint is served wrongly: the checkpoint size is too large",
        ),
        ("checkpoint not UTF-8", "/checkpoint is served wrongly: the signed note is not UTF-8"),
    ],
)
def test_a_served_note_that_is_no_checkpoint_is_the_log_s_failure(
    logs: dict[str, Log], tmp_path: Path, case: str, detail: str
) -> None:
    """It was ``PayloadTooLarge``, ``LimitExceeded`` or ``MalformedInput`` as it came from the
    reader or the parser: the CLI's exit 2, a usage error of the monitor's user."""
    path, answer, _ = _attacks(logs)[case]
    store = MonitorStore(tmp_path / "state.sqlite3")
    try:
        with (
            HostileServer(_source(logs["honest"]), {path: answer}) as server,
            HttpLogFetcher(server.url, timeout=1.0) as fetcher,
            bounded(30),
            pytest.raises(VerificationFailed) as raised,
        ):
            Monitor(store).check(server.url, fetcher, [SIGNER.verifier()])
        assert store.state(ORIGIN) is None
    finally:
        store.close()
    assert type(raised.value) is VerificationFailed
    assert raised.value.detail == f"{server.url}{detail}"


_WRONG = "is served wrongly: the transparency configuration "

# What the log serves as its transparency configuration when the monitor trusts it on first
# use, and the end of the line after the configuration's URL.
CONFIG_ATTACKS: dict[str, tuple[Callable[[], Answer], str]] = {
    "an error page": (lambda: ok(b"<html>a proxy's error page</html>"), _WRONG + "is not JSON"),
    "nested too deep": (lambda: ok(b'{"a":' * 100_000), _WRONG + "is not JSON"),
    "a list": (lambda: ok(b"[]"), _WRONG + "is not a JSON object"),
    "no origin": (
        lambda: ok(json.dumps({"checkpoint_keys": [VKEY]}).encode()),
        _WRONG + "has no checkpoint_origin",
    ),
    "101 keys": (
        lambda: ok(
            json.dumps({"checkpoint_origin": ORIGIN, "checkpoint_keys": [VKEY] * 101}).encode()
        ),
        _WRONG + "lists more than 100 checkpoint keys",
    ),
    "a petabyte": (huge_length, "is larger than any log resource"),
}


@pytest.mark.parametrize("case", list(CONFIG_ATTACKS))
def test_trust_on_first_use_of_a_configuration_that_is_none_exits_1(
    logs: dict[str, Log], case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without ``--key`` the monitor trusts the keys the log's configuration names: one that
    does not parse was ``MalformedInput`` (exit 2) naming no log; it is the log's failure,
    naming the configuration's URL, and nothing is pinned."""
    attack, message = CONFIG_ATTACKS[case]
    state = tmp_path / "monitor.sqlite3"
    with HostileServer(_source(logs["honest"]), {CONFIG_PATH: attack()}) as server, bounded(30):
        code = main(["monitor", "once", "--state", str(state), "--url", server.url,
                     "--check-timeout", "2"])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 1, err
    config = f"{server.url}/{CONFIG_PATH}"
    assert err.startswith(f"ironroot: verification-failed: {config} {message}"), err
    assert err.count("\n") == 1
    assert "checkpoint" not in server.requests
    store = MonitorStore(state, create=False)
    try:
        assert store.pin(server.url) is None
    finally:
        store.close()


# A Location whose path spells an escape sequence and a line break in percent-escapes: the
# redirect's error quoted it decoded (httpx's URL.path), the server's escape and line break
# in the detail; it is quoted as on the wire now (ironroot._httpclient.redirect_target), and
# the output's own escaping (ironroot._text.shown) finds nothing to spell.
_FORGED_LOCATION = "/%1b%5b2K%0dironroot:%20all%20logs%20verified%0a"
_FORGED_SHOWN = "%1b%5b2K%0dironroot:%20all%20logs%20verified%0a"


def test_a_failure_quoting_a_servers_text_is_shown_when_several_logs_are_checked(
    logs: dict[str, Log], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """With several URLs ``monitor once`` prints each failure on its own ``failed`` line: the
    detail went out as the server wrote it, so a redirect's Location reached the operator's
    terminal as an escape sequence and a forged line (with one URL, the CLI's one error line
    was shown already)."""
    state = tmp_path / "monitor.sqlite3"
    attack = {"checkpoint": redirect(_FORGED_LOCATION)}
    with (
        HostileServer(_source(logs["honest"])) as honest,
        HostileServer(_source(logs["honest"]), attack) as hostile,
        bounded(30),
    ):
        code = main(
            ["monitor", "once", "--state", str(state), "--url", honest.url, "--url",
             hostile.url, "--key", VKEY, "--check-timeout", "2"]
        )  # fmt: skip
    err = capsys.readouterr().err
    assert code == 1
    assert err == (
        f"failed {hostile.url}: redirect: GET {hostile.url}/checkpoint answered 302, a "
        f"redirect to {hostile.url}/{_FORGED_SHOWN}: a log is read only where its URL says, no "
        "redirect is followed; if the log moved, give its new URL\n"
    )


def test_a_failure_quoting_a_servers_text_is_logged_shown_by_monitor_follow(
    logs: dict[str, Log], caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    """``monitor follow`` logs a URL's failure as a warning; without ``--log-format``
    Python's last-resort handler writes the message to stderr as it is, escapes and all."""
    state = tmp_path / "monitor.sqlite3"
    attack = {"checkpoint": redirect(_FORGED_LOCATION)}
    with (
        HostileServer(_source(logs["honest"])) as honest,
        HostileServer(_source(logs["honest"]), attack) as hostile,
        bounded(30),
        caplog.at_level("WARNING", logger="ironroot.monitor"),
    ):
        code = main(
            ["monitor", "follow", "--state", str(state), "--url", honest.url, "--url",
             hostile.url, "--key", VKEY, "--check-timeout", "2", "--rounds", "1"]
        )  # fmt: skip
    assert code == 1
    (record,) = [r for r in caplog.records if r.getMessage().startswith("round 1:")]
    message = record.getMessage()
    assert _FORGED_SHOWN in message
    assert not any(c in message for c in "\x1b\r\n")
