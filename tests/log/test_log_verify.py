"""verify_log on a stored log (tampering with it in SQLite and in PostgreSQL), the remote
checker, the layout."""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from log_testkit import (
    ORIGIN,
    LogBackedFetcher,
    LogPlace,
    MissingFetcher,
    ed25519_key,
    entries,
    fill,
    fill_before_start,
    make_data_dir,
    mldsa_key,
    signer,
)

from ironroot.crypto import PrivateKey
from ironroot.errors import (
    BadSignature,
    ConfigError,
    InconsistentCheckpoint,
    MalformedInput,
    NotFound,
    StorageError,
    UnknownIssuer,
    Unreachable,
    VerificationFailed,
)
from ironroot.log import (
    CONFIG_PATH,
    HttpLogFetcher,
    Log,
    LogIdentity,
    StoreConfig,
    fetch_log_identity,
    layout,
    load_log_identity,
    verify_log_dir,
    verify_remote_log,
)
from ironroot_pg import add_store_to_config, copy_data_dir, raw_sql, test_store

SIZE = 600


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def built(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Path, PrivateKey, list[bytes]]]:
    """A data directory holding a log of 600 entries in several batches, in each store."""
    key = ed25519_key()
    with test_store(request.param) as store:
        data_dir = make_data_dir(tmp_path_factory.mktemp("log"), key)
        add_store_to_config(data_dir, store)
        log = LogPlace(store, data_dir).open_log(
            origin=ORIGIN, note_signers=[signer(key)], max_batch=97
        )
        fill_before_start(log, entries(SIZE))
        (data_dir / "early.checkpoint").write_bytes(log.checkpoint_at(97))
        log.close()
        yield data_dir, key, entries(SIZE)


def _kind(data_dir: Path) -> str:
    return StoreConfig.of_data_dir(data_dir).kind


@pytest.fixture
def copy(built: tuple[Path, PrivateKey, list[bytes]], tmp_path: Path) -> Iterator[Path]:
    """A fresh copy of the built data directory, and of its log, to tamper with."""
    source = tmp_path / "source"
    (source / "keys").mkdir(parents=True)
    names = ["ironroot.toml", "keys/checkpoint.pub.pem"]
    names += [p.name for p in built[0].iterdir() if p.name.startswith("log.sqlite3")]
    for name in names:
        shutil.copyfile(built[0] / name, source / name)
    with copy_data_dir(source, tmp_path / "data") as target:
        yield target


def _sql(data_dir: Path, statement: str, *args: object) -> None:
    raw_sql(data_dir, statement, *args)


def _flip(blob: bytes, at: int = 0) -> bytes:
    return blob[:at] + bytes([blob[at] ^ 1]) + blob[at + 1 :]


def _row(data_dir: Path, query: str, *args: object) -> bytes:
    return bytes(raw_sql(data_dir, query, *args)[0][0])


def test_untouched_log_verifies(copy: Path) -> None:
    report = verify_log_dir(copy)
    assert (report.size, report.entries, report.pending) == (SIZE, SIZE, 0)
    # Level 0: two full tiles and a partial of 88; level 1: a partial of 2.
    assert report.tiles == 4
    # Batches of 97 from an empty log: sizes 0, 97, ..., 582 and 600.
    assert report.checkpoints == 8


def test_a_cleanly_stopped_copy_verifies_without_writing_anything(copy: Path) -> None:
    """`log verify` on a read-only copy: nothing is created or changed in the directory (no
    SQLite -wal/-shm either), so a directory mounted read-only verifies the same way."""
    if _kind(copy) != "sqlite":
        pytest.skip("SQLite's files only: a PostgreSQL log is read in a read-only snapshot")

    def snapshot() -> dict[str, tuple[int, int]]:
        return {
            str(p.relative_to(copy)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(copy.rglob("*"))
        }

    assert not (copy / "log.sqlite3-wal").exists()  # cleanly stopped
    before = snapshot()
    report = verify_log_dir(copy)
    assert report.size == SIZE
    assert snapshot() == before


@pytest.mark.parametrize(
    ("tamper", "what", "sqlite_only"),
    [
        pytest.param(
            lambda d: _sql(
                d,
                "UPDATE entries SET entry = ? WHERE idx = 5",
                _flip(_row(d, "SELECT entry FROM entries WHERE idx = 5")),
            ),
            "tile 0/0 differs",
            True,
            id="entry-byte",
        ),
        pytest.param(
            lambda d: _sql(d, "UPDATE entries SET entry = ? WHERE idx = 5", b"rewritten"),
            "tile 0/0 differs",
            False,
            id="entry-rewritten",
        ),
        pytest.param(
            lambda d: _sql(
                d,
                "UPDATE tiles SET data = ? WHERE level = 0 AND idx = 1",
                _flip(_row(d, "SELECT data FROM tiles WHERE level = 0 AND idx = 1"), 100),
            ),
            "tile 0/1 differs",
            False,
            id="full-tile-byte",
        ),
        pytest.param(
            lambda d: _sql(
                d,
                "UPDATE tiles SET data = ? WHERE level = 0 AND idx = 2",
                _flip(_row(d, "SELECT data FROM tiles WHERE level = 0 AND idx = 2"), 31),
            ),
            "tile 0/2 differs",
            False,
            id="partial-tile-byte",
        ),
        pytest.param(
            lambda d: _sql(
                d,
                "UPDATE tiles SET data = ? WHERE level = 1 AND idx = 0",
                _row(d, "SELECT data FROM tiles WHERE level = 1 AND idx = 0")[:32],
            ),
            "tile 1/0 differs",
            False,
            id="level-1-tile-truncated",
        ),
        pytest.param(
            lambda d: _sql(d, "INSERT INTO tiles VALUES (3, 0, ?)", bytes(32)),
            "holds 5 tiles",
            False,
            id="extra-tile",
        ),
        pytest.param(
            lambda d: _sql(d, "DELETE FROM tiles WHERE level = 0 AND idx = 0"),
            "tile/0/000 is missing",
            False,
            id="missing-tile",
        ),
        pytest.param(
            lambda d: _sql(
                d,
                "UPDATE checkpoints SET note = ? WHERE size = 97",
                _row(d, "SELECT note FROM checkpoints WHERE size = 97").replace(
                    b"\n97\n", b"\n96\n"
                ),
            ),
            "size 97 does not verify",
            False,
            id="checkpoint-body",
        ),
        pytest.param(
            lambda d: _sql(
                d,
                "UPDATE checkpoints SET note = ? WHERE size = 194",
                _row(d, "SELECT note FROM checkpoints WHERE size = 194")[:-6] + b"AAAA=\n",
            ),
            "size 194 does not verify",
            False,
            id="checkpoint-signature",
        ),
        pytest.param(
            lambda d: _sql(d, "DELETE FROM checkpoints WHERE size = ?", SIZE),
            "no checkpoint was published at the log's size 600",
            False,
            id="latest-checkpoint-deleted",
        ),
        pytest.param(
            lambda d: _sql(
                d,
                "UPDATE state SET hashes = ?",
                _flip(_row(d, "SELECT hashes FROM state"), 3),
            ),
            "compact range differs",
            False,
            id="state-hashes",
        ),
        pytest.param(
            lambda d: _sql(d, "UPDATE state SET size = 599"),
            "says size 599",
            False,
            id="state-size",
        ),
        pytest.param(
            lambda d: _sql(d, "DELETE FROM entries WHERE idx = 300"),
            "entry 300 is missing",
            False,
            id="entry-gap",
        ),
        pytest.param(
            lambda d: _sql(
                d, "INSERT INTO pending (entry_id, entry) VALUES (?, ?)", bytes(32), b"x"
            ),
            "does not hash to its id",
            False,
            id="pending-id",
        ),
        pytest.param(
            # one the log never writes (check_batch refuses it): integrating it is refused
            # batch after batch, so no entry would ever be integrated again
            lambda d: _sql(
                d,
                "INSERT INTO pending (entry_id, entry) VALUES (?, ?)",
                hashlib.sha256(b"x" * 65536).digest(),
                b"x" * 65536,
            ),
            "a pending entry is larger than 65535 bytes",
            False,
            id="pending-too-large",
        ),
        pytest.param(
            # the log then refuses to open (another log's store): verify says so first
            lambda d: _sql(d, "UPDATE meta SET value = 'other.example' WHERE key = 'origin'"),
            "the store is the log of 'other.example'",
            False,
            id="meta-origin",
        ),
        pytest.param(
            lambda d: _sql(d, "INSERT INTO batch_data VALUES (5, 'r', ?)", b"\x00"),
            "batch data for a size without a checkpoint",
            False,
            id="batch-size",
        ),
        pytest.param(
            # the log writes batch data with each batch of entries, never for the empty tree,
            # and nothing reads it there: a row at size 0 is checked by no batch verifier
            lambda d: _sql(d, "INSERT INTO batch_data VALUES (0, 'r', ?)", b"\x00"),
            "batch data for the empty tree",
            False,
            id="batch-size-0",
        ),
    ],
)
def test_any_tampering_is_a_storage_error(
    copy: Path, tamper: Callable[[Path], None], what: str | dict[str, str], sqlite_only: bool
) -> None:
    if sqlite_only and _kind(copy) == "postgresql":
        pytest.skip(
            "PostgreSQL stores no entry ids: its id index is derived from the entries, so it "
            "cannot be changed apart from them (entry-rewritten covers a changed entry)"
        )
    # A log this small keeps its SQLite id index in memory, made from the entries; the
    # tampering of stored keys is in test_sqlite_index.py.
    tamper(copy)
    with pytest.raises(StorageError) as info:
        verify_log_dir(copy)
    assert (what if isinstance(what, str) else what[_kind(copy)]) in info.value.detail


def test_checkpoint_signed_by_another_key_is_a_storage_error(copy: Path) -> None:
    intruder = ed25519_key()
    from ironroot.log import Checkpoint, open_checkpoint, sign_checkpoint

    note = _row(copy, "SELECT note FROM checkpoints WHERE size = ?", SIZE)
    checkpoint = open_checkpoint(note, load_log_identity(copy).verifiers)
    forged = sign_checkpoint(Checkpoint(ORIGIN, SIZE, checkpoint.root), [signer(intruder)])
    _sql(copy, "UPDATE checkpoints SET note = ? WHERE size = ?", forged, SIZE)
    with pytest.raises(StorageError) as info:
        verify_log_dir(copy)
    assert isinstance(info.value.__cause__, UnknownIssuer)


def test_verifying_with_the_wrong_key_fails(copy: Path) -> None:
    with pytest.raises(StorageError):
        verify_log_dir(copy, origin=ORIGIN, verifiers=[signer(ed25519_key()).verifier()])


# --- earlier checkpoints ---------------------------------------------------------------------


def test_earlier_checkpoint_is_consistent(copy: Path) -> None:
    early = _row(copy, "SELECT note FROM checkpoints WHERE size = 97")
    report = verify_log_dir(copy, earlier_checkpoint=early)
    assert report.earlier_checkpoint_size == 97


def test_forked_checkpoint_is_inconsistent(
    built: tuple[Path, PrivateKey, list[bytes]], tmp_path: Path
) -> None:
    data_dir, key, _ = built
    # The same key signs a different history (a fork).
    fork_dir = make_data_dir(tmp_path / "fork", key)
    with Log.open(fork_dir, origin=ORIGIN, note_signers=[signer(key)]) as fork:
        fill(fork, entries(50, tag=b"forged"))
        forked = fork.checkpoint()
    with pytest.raises(InconsistentCheckpoint):
        verify_log_dir(data_dir, earlier_checkpoint=forked)
    with Log.open(fork_dir, origin=ORIGIN, note_signers=[signer(key)]) as fork:
        fill(fork, entries(SIZE + 10, tag=b"forged"))
        bigger = fork.checkpoint()
    with pytest.raises(InconsistentCheckpoint):
        verify_log_dir(data_dir, earlier_checkpoint=bigger)


def test_earlier_checkpoint_with_a_bad_signature(
    built: tuple[Path, PrivateKey, list[bytes]],
) -> None:
    data_dir = built[0]
    early = (data_dir / "early.checkpoint").read_bytes()
    with pytest.raises(BadSignature):
        verify_log_dir(data_dir, earlier_checkpoint=early.replace(b"\n97\n", b"\n96\n"))
    with pytest.raises(MalformedInput):
        verify_log_dir(data_dir, earlier_checkpoint=b"not a note")


# --- the remote checker ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def served() -> Iterator[Log]:
    key = ed25519_key()
    log = Log.open_memory(
        origin=ORIGIN, note_signers=[signer(key), signer(mldsa_key())], max_batch=200
    )
    fill_before_start(log, entries(530))
    yield log
    log.close()


def test_remote_log_verifies_with_keys_from_the_server(served: Log) -> None:
    fetcher = LogBackedFetcher(served)
    report = verify_remote_log(fetcher)
    assert (report.size, report.root, report.entry_bundles) == (530, served.root(), 3)
    assert report.tiles == 4
    assert fetcher.requests[0] == CONFIG_PATH
    assert "tile/entries/002.p/18" in fetcher.requests
    assert "tile/1/000.p/2" in fetcher.requests


def test_remote_earlier_checkpoint(served: Log) -> None:
    early = served.checkpoint_at(200)
    report = verify_remote_log(LogBackedFetcher(served), earlier_checkpoint=early)
    assert report.earlier_checkpoint_size == 200
    other = Log.open_memory(origin=ORIGIN, note_signers=[signer(ed25519_key())])
    with other:
        fill(other, entries(3))
        foreign = other.checkpoint()
    with pytest.raises(UnknownIssuer):
        verify_remote_log(LogBackedFetcher(served), earlier_checkpoint=foreign)


class _Tampering(LogBackedFetcher):
    def __init__(self, log: Log, path: str, change: Callable[[bytes], bytes]) -> None:
        super().__init__(log)
        self.path, self.change = path, change

    def fetch(self, path: str, *, accept: str | None = None) -> bytes:
        data = super().fetch(path, accept=accept)
        return self.change(data) if path == self.path else data


@pytest.mark.parametrize(
    ("path", "change", "error"),
    [
        ("tile/0/001", _flip, VerificationFailed),
        ("tile/0/002.p/18", lambda b: _flip(b, 40), VerificationFailed),
        ("tile/1/000.p/2", lambda b: b[:32], VerificationFailed),
        ("tile/entries/000", _flip, VerificationFailed),
        ("tile/entries/002.p/18", lambda b: b + b"\x00\x00", VerificationFailed),
        ("tile/entries/001", lambda b: b[:-1], VerificationFailed),
        ("checkpoint", lambda b: b.replace(b"\n530\n", b"\n529\n"), BadSignature),
        ("checkpoint", lambda b: b"garbage\n", VerificationFailed),
    ],
)
def test_remote_tampering_is_detected(
    served: Log, path: str, change: Callable[[bytes], bytes], error: type[Exception]
) -> None:
    with pytest.raises(error):
        verify_remote_log(_Tampering(served, path, change))


def test_remote_missing_resources() -> None:
    with pytest.raises(NotFound):
        verify_remote_log(MissingFetcher())
    identity = LogIdentity(ORIGIN, (signer(ed25519_key()).verifier(),))
    with pytest.raises(VerificationFailed):
        verify_remote_log(MissingFetcher(), identity=identity)


def test_remote_with_the_wrong_identity(served: Log) -> None:
    identity = LogIdentity("other.example", served.note_verifiers)
    with pytest.raises(UnknownIssuer):
        verify_remote_log(LogBackedFetcher(served), identity=identity)


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[]",
        b'{"checkpoint_origin": "o"}',
        b'{"checkpoint_origin": "o", "checkpoint_keys": []}',
        b'{"checkpoint_origin": 5, "checkpoint_keys": ["x"]}',
        b'{"checkpoint_origin": "o", "checkpoint_keys": ["not a vkey"]}',
    ],
)
def test_malformed_transparency_configuration(body: bytes) -> None:
    class _Config:
        def fetch(self, path: str, *, accept: str | None = None) -> bytes:
            assert accept == "application/json"
            return body

    with pytest.raises(VerificationFailed) as info:  # the log's failure, not the caller's
        fetch_log_identity(_Config())
    assert type(info.value) is VerificationFailed
    assert isinstance(info.value.__cause__, MalformedInput)
    assert info.value.detail.startswith(
        ".well-known/transparency-configuration is served wrongly: "
    )


def _transport(log: Log) -> httpx.MockTransport:
    fetcher = LogBackedFetcher(log)

    def handler(request: httpx.Request) -> httpx.Response:
        path = request.url.path.removeprefix("/prefix/")
        try:
            return httpx.Response(200, content=fetcher.fetch(path))
        except (NotFound, MalformedInput):
            return httpx.Response(404)

    return httpx.MockTransport(handler)


def test_http_fetcher_over_a_mock_transport(served: Log) -> None:
    client = httpx.Client(transport=_transport(served))
    with HttpLogFetcher("https://log.example/prefix/", client=client) as fetcher:
        report = verify_remote_log(fetcher)
        assert report.size == 530
        with pytest.raises(NotFound):
            fetcher.fetch("tile/9/000")
    client.close()


def test_http_fetcher_maps_errors() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("boom"):
            raise httpx.ConnectError("refused", request=request)
        return httpx.Response(500)

    client = httpx.Client(transport=httpx.MockTransport(handler))
    fetcher = HttpLogFetcher("http://log.example", client=client)
    with pytest.raises(StorageError):  # the server answered, wrongly
        fetcher.fetch("checkpoint")
    with pytest.raises(Unreachable, match=r"cannot reach http://log\.example/boom: refused"):
        fetcher.fetch("boom")  # no answer at all
    with pytest.raises(MalformedInput):
        HttpLogFetcher("ftp://log.example")
    client.close()


def test_http_fetcher_names_no_password_in_its_errors() -> None:
    """A log behind basic authentication (``https://user:password@…``) is read with it, but
    no error names the password: a message goes to a terminal, a CI log, a ticket."""
    seen: list[str | None] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("authorization"))
        if request.url.path.endswith("boom"):
            raise httpx.ConnectError("refused", request=request)
        return httpx.Response(404 if request.url.path.endswith("gone") else 500)

    client = httpx.Client(transport=httpx.MockTransport(handler))
    fetcher = HttpLogFetcher("http://reader:s3cret@log.example/log", client=client)
    for path, error in [("boom", Unreachable), ("gone", NotFound), ("checkpoint", StorageError)]:
        with pytest.raises(error) as info:
            fetcher.fetch(path)
        assert "s3cret" not in str(info.value)
        assert f"http://log.example/log/{path}" in info.value.detail
    assert all(a is not None and a.startswith("Basic ") for a in seen)  # still sent
    client.close()


@pytest.mark.parametrize("url", ["http://log.example/log?token=x", "http://log.example/log#x"])
def test_a_log_url_with_a_query_or_fragment_is_refused(url: str) -> None:
    """A log's resources are paths beneath its URL: after a query (or a fragment) they would
    all be one request, ``/log``, whatever was asked for."""
    with pytest.raises(MalformedInput, match="no query or fragment"):
        HttpLogFetcher(url)


# --- layout --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("toml", "origin"),
    [
        ('[log]\norigin = "a.example/log"\n', "a.example/log"),
        ('service_issuer = "https://transparency.example"\n', "transparency.example"),
        ('[transparency]\nservice_issuer = "https://t.example:8443/x"\n', "t.example"),
        ('[service]\nissuer = "svc.example"\n', "svc.example"),
        ('service_issuer = "https://x.example"\n[log]\norigin = "y.example"\n', "y.example"),
    ],
)
def test_log_origin_from_configuration(tmp_path: Path, toml: str, origin: str) -> None:
    (tmp_path / "ironroot.toml").write_text(toml)
    assert layout.read_log_origin(tmp_path) == origin


@pytest.mark.parametrize(
    "toml",
    ["", "[log]\norigin = 5\n", '[log]\norigin = ""\n', "not = [toml", 'service_issuer = "://"\n'],
)
def test_bad_origin_configuration(tmp_path: Path, toml: str) -> None:
    (tmp_path / "ironroot.toml").write_text(toml)
    with pytest.raises(ConfigError):
        layout.read_log_origin(tmp_path)


def test_missing_files_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        layout.read_log_origin(tmp_path)
    (tmp_path / "ironroot.toml").write_text('[log]\norigin = "o.example"\n')
    with pytest.raises(ConfigError):
        load_log_identity(tmp_path)
    (tmp_path / "keys").mkdir()
    # The private key is never read, intact or not: only the public key file counts.
    layout.checkpoint_key_path(tmp_path).write_bytes(ed25519_key().to_pem())
    with pytest.raises(ConfigError, match="no checkpoint public key at"):
        load_log_identity(tmp_path)


def test_only_public_material_is_read(copy: Path) -> None:
    # A private key file that is not the log's (or garbage) changes nothing.
    layout.checkpoint_key_path(copy).write_bytes(ed25519_key().to_pem())
    assert verify_log_dir(copy).size == SIZE
    layout.checkpoint_key_path(copy).write_bytes(b"garbage")
    assert verify_log_dir(copy).size == SIZE


@pytest.mark.parametrize("damage", [b"", b"garbage", b"-----BEGIN PUBLIC KEY-----\nAAAA\n"])
def test_a_damaged_public_key_file_is_reported(copy: Path, damage: bytes) -> None:
    layout.checkpoint_public_key_path(copy).write_bytes(damage)
    with pytest.raises(ConfigError, match=r"checkpoint\.pub\.pem is damaged"):
        verify_log_dir(copy)


def test_a_flipped_byte_in_the_public_key_is_reported(copy: Path) -> None:
    path = layout.checkpoint_public_key_path(copy)
    pem = path.read_bytes()
    # A character inside the base64 key body: the file parses, as a different key.
    lines = pem.split(b"\n")
    body = bytearray(lines[1])
    body[-5] = ord("A") if body[-5] != ord("A") else ord("B")
    lines[1] = bytes(body)
    path.write_bytes(b"\n".join(lines))
    with pytest.raises(ConfigError, match="damaged"):
        verify_log_dir(copy)


def test_another_log_s_public_key_is_reported(copy: Path) -> None:
    layout.checkpoint_public_key_path(copy).write_bytes(ed25519_key().public_key.to_pem())
    with pytest.raises(ConfigError, match="verifies none of the log's checkpoints"):
        verify_log_dir(copy)


def test_a_public_key_that_verifies_some_checkpoints_blames_the_store(copy: Path) -> None:
    # The key is right; one stored checkpoint is not: the store is what differs.
    note = _row(copy, "SELECT note FROM checkpoints WHERE size = 97")
    _sql(copy, "UPDATE checkpoints SET note = ? WHERE size = 97", _flip(note, len(note) - 10))
    with pytest.raises(StorageError, match="the checkpoint at size 97 does not verify"):
        verify_log_dir(copy)


def test_identity_from_an_mldsa_key(tmp_path: Path) -> None:
    key = mldsa_key()
    make_data_dir(tmp_path, key, "pq.example")
    identity = load_log_identity(tmp_path)
    assert identity.origin == "pq.example"
    assert identity.verifiers == (signer(key, "pq.example").verifier(),)
    assert json.loads(json.dumps([v.vkey for v in identity.verifiers]))
