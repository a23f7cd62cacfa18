"""The monitor: consistency with the last verified checkpoint, entries against the root,
watched statements, forks (split views between two logs of one origin), and the CLI."""

from __future__ import annotations

import json
import sqlite3
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import cbor2
import httpx
import pytest
from witness_testkit import (
    ORIGIN,
    VENDOR,
    LogFetcher,
    entries,
    fill,
    grown,
    statement,
)

from ironroot.cli import main
from ironroot.cose import SignedStatement
from ironroot.crypto import Algorithm, PrivateKey
from ironroot.errors import (
    ConfigError,
    Conflict,
    ForkDetected,
    InconsistentCheckpoint,
    InsufficientCosignatures,
    InvalidProof,
    LimitExceeded,
    MalformedInput,
    MalformedStatement,
    StorageError,
    UnknownIssuer,
    Unreachable,
    VerificationFailed,
)
from ironroot.log import (
    CONFIG_PATH,
    Checkpoint,
    HttpLogFetcher,
    Log,
    Note,
    NoteSignature,
    NoteSigner,
    NoteVerifier,
    encode_entry_bundle,
    parse_tile_path,
    sign_checkpoint,
)
from ironroot.merkle import leaf_hash, node_hash
from ironroot.monitor import Monitor, MonitorStore, Watch
from ironroot.witness import Cosigner, ForkProof, WitnessPolicy


@pytest.fixture
def log_key() -> PrivateKey:
    return PrivateKey.generate(Algorithm.ED25519)


@pytest.fixture
def vendor() -> PrivateKey:
    return PrivateKey.generate(Algorithm.ES256)


@pytest.fixture
def store() -> Iterator[MonitorStore]:
    store = MonitorStore(":memory:")
    yield store
    store.close()


def _keys(log: Log) -> tuple[NoteVerifier, ...]:
    return log.note_verifiers


def test_follows_a_growing_log_and_reports_watched_statements(
    store: MonitorStore, log_key: PrivateKey, vendor: PrivateKey
) -> None:
    log = grown(log_key, [statement(vendor, "pkg:fw/other")])
    monitor = Monitor(store, watch=Watch(frozenset({"pkg:fw/bmc"}), frozenset()))
    try:
        events = monitor.check("log-a", LogFetcher(log), _keys(log))
        assert [e.kind for e in events] == ["checkpoint"]
        assert monitor.check("log-a", LogFetcher(log), _keys(log)) == []  # nothing new
        fill(log, [statement(vendor, "pkg:fw/bmc", b"1.2.3"), b"not a statement"])
        fill(log, entries(300))  # crosses a tile boundary
        events = monitor.check("log-a", LogFetcher(log), _keys(log))
        kinds = [e.kind for e in events]
        assert kinds == ["checkpoint", "statement"]
        watched = events[1]
        assert (watched.index, watched.sub, watched.iss) == (1, "pkg:fw/bmc", VENDOR)
        assert watched.watched == ("sub",)
        assert watched.to_json()["event"] == "statement"
        state = store.state(ORIGIN)
        assert state is not None
        assert state.size == log.tree_size == 303
    finally:
        log.close()


def _refused_by_the_parser(data: bytes) -> bytes:
    """``data`` with a ``kid`` in its unprotected header: the strict parse refuses it
    (identity headers must be protected), another party's parser might not."""
    message = cbor2.loads(data)
    protected, _, payload, signature = message.value
    return cbor2.dumps(cbor2.CBORTag(18, [protected, {4: b"unprotected-kid"}, payload, signature]))


def test_a_watched_statement_the_parser_refuses_is_still_reported(
    store: MonitorStore, log_key: PrivateKey, vendor: PrivateKey
) -> None:
    """A log holding a statement about a watched subject that this parser refuses: a
    stricter parse must not hide it from the monitor. It is reported, saying why; an entry
    that is no COSE_Sign1 with claims (or names nobody watched) is not."""
    odd = _refused_by_the_parser(statement(vendor, "pkg:fw/bmc", b"9.9.9"))
    with pytest.raises(MalformedStatement):
        SignedStatement.parse(odd)
    unwatched = _refused_by_the_parser(statement(vendor, "pkg:fw/other"))
    log = grown(log_key, [odd, unwatched, b"not a statement", cbor2.dumps([b"", {}, b"", b""])])
    try:
        monitor = Monitor(store, watch=Watch(frozenset({"pkg:fw/bmc"}), frozenset()))
        events = [
            e for e in monitor.check("log", LogFetcher(log), _keys(log)) if e.kind != "checkpoint"
        ]
        assert [(e.kind, e.index, e.sub, e.iss) for e in events] == [
            ("statement", 0, "pkg:fw/bmc", VENDOR)
        ]
        assert events[0].detail.startswith("does not parse as a Signed Statement (")
        assert events[0].detail.endswith("its iss and sub are read unchecked")
        assert "read unchecked" in events[0].line()
    finally:
        log.close()


def test_an_issuer_watch(store: MonitorStore, log_key: PrivateKey, vendor: PrivateKey) -> None:
    log = grown(log_key, [statement(vendor, "pkg:fw/a"), statement(vendor, "pkg:fw/b")])
    try:
        monitor = Monitor(store, watch=Watch(frozenset(), frozenset({VENDOR})))
        events = monitor.check("log", LogFetcher(log), _keys(log))
        assert [e.sub for e in events if e.kind == "statement"] == ["pkg:fw/a", "pkg:fw/b"]
    finally:
        log.close()


def test_a_fork_between_two_logs_of_one_origin_is_found_and_proven(
    store: MonitorStore, log_key: PrivateKey
) -> None:
    """A split view: two URLs serve one origin signed with one key, diverging after 3
    entries. The monitor verifies the first, then finds the second does not extend it; the
    proof it keeps verifies offline with only the log's public key."""
    honest = grown(log_key, entries(3), entries(2, 3))
    forked = grown(log_key, entries(3), entries(5, 3, tag=b"evil"))
    try:
        monitor = Monitor(store)
        monitor.check("https://a.example", LogFetcher(honest), _keys(honest))
        events = monitor.check("https://b.example", LogFetcher(forked), _keys(forked))
        assert [e.kind for e in events] == ["fork"]
        with pytest.raises(ForkDetected):
            Monitor.raise_for(events)
        ((_, origin, data, _),) = store.forks()
        assert origin == ORIGIN
        proof = ForkProof.parse(data)
        first, second = proof.verify(honest.note_verifiers)
        assert (first.size, second.size) == (5, 8)
        # the state still is the honest tree: the next round finds the fork again
        state = store.state(ORIGIN)
        assert state is not None
        assert state.size == 5
    finally:
        honest.close()
        forked.close()


def test_a_fork_at_a_power_of_two_size_is_proven_too(
    store: MonitorStore, log_key: PrivateKey
) -> None:
    honest = grown(log_key, entries(4))
    forked = grown(log_key, entries(2), entries(6, 2, tag=b"evil"))
    try:
        monitor = Monitor(store)
        monitor.check("a", LogFetcher(honest), _keys(honest))
        (event,) = monitor.check("b", LogFetcher(forked), _keys(forked))
        assert event.kind == "fork"
        ForkProof.parse(store.forks()[0][2]).verify(honest.note_verifiers)
    finally:
        honest.close()
        forked.close()


def test_same_size_another_root_is_a_fork(store: MonitorStore, log_key: PrivateKey) -> None:
    honest = grown(log_key, entries(6))
    forked = grown(log_key, entries(6, tag=b"evil"))
    try:
        monitor = Monitor(store)
        monitor.check("a", LogFetcher(honest), _keys(honest))
        (event,) = monitor.check("b", LogFetcher(forked), _keys(forked))
        assert event.kind == "fork"
        proof = ForkProof.parse(store.forks()[0][2])
        assert proof.proof == ()
        proof.verify(honest.note_verifiers)
    finally:
        honest.close()
        forked.close()


def test_a_fork_found_at_every_round_is_kept_once(store: MonitorStore, log_key: PrivateKey) -> None:
    """The state does not advance past a fork, so every round of ``follow`` finds it again:
    each reports it, under the one proof kept (the file does not grow by a proof a round);
    another forked checkpoint is another proof."""
    honest = grown(log_key, entries(6))
    forked = grown(log_key, entries(6, tag=b"evil"))
    other = grown(log_key, entries(6, tag=b"other"))
    try:
        monitor = Monitor(store)
        monitor.check("a", LogFetcher(honest), _keys(honest))
        rounds = [monitor.check("b", LogFetcher(forked), _keys(forked)) for _ in range(3)]
        assert [(e.kind, e.fork_id) for (e,) in rounds] == [("fork", 1)] * 3
        (event,) = monitor.check("c", LogFetcher(other), _keys(other))
        assert (event.kind, event.fork_id) == ("fork", 2)
        assert [ident for ident, *_ in store.forks()] == [1, 2]
    finally:
        honest.close()
        forked.close()
        other.close()


class _Junked(LogFetcher):
    """A URL serving ``log``'s checkpoint with a signature line of an unknown key added, a
    new one at each read (signed-note: anyone may add one, and verifiers ignore it)."""

    def __init__(self, log: Log) -> None:
        super().__init__(log)
        self.reads = 0

    def fetch(self, path: str, *, accept: str | None = None) -> bytes:
        data = super().fetch(path, accept=accept)
        if path != "checkpoint":
            return data
        self.reads += 1
        junk = NoteSignature("junk.example", self.reads.to_bytes(4, "big"), bytes(64))
        return data + junk.encode().encode()


def test_a_fork_varied_by_unknown_signature_lines_is_kept_once(
    store: MonitorStore, log_key: PrivateKey
) -> None:
    """A URL that serves a forked checkpoint with another unknown signature line at each round:
    one fork, kept once with the log's lines only (keyed by the note as served, it was kept
    again at every round of follow, each copy as large as a note may be)."""
    honest = grown(log_key, entries(6))
    forked = grown(log_key, entries(6, tag=b"evil"))
    try:
        monitor = Monitor(store)
        monitor.check("a", LogFetcher(honest), _keys(honest))
        served = _Junked(forked)
        rounds = [monitor.check("b", served, _keys(forked)) for _ in range(3)]
        assert [(e.kind, e.fork_id) for (e,) in rounds] == [("fork", 1)] * 3
        (kept,) = store.forks()
        proof = ForkProof.parse(kept[2])
        assert proof.second == forked.checkpoint()
        proof.verify(honest.note_verifiers)
    finally:
        honest.close()
        forked.close()


def test_a_log_that_goes_back_is_refused(store: MonitorStore, log_key: PrivateKey) -> None:
    log = grown(log_key, entries(3), entries(3, 3))
    try:
        monitor = Monitor(store)
        monitor.check("a", LogFetcher(log), _keys(log))

        class Stale(LogFetcher):
            def fetch(self, path: str, *, accept: str | None = None) -> bytes:
                if path == "checkpoint":
                    return self.log.checkpoint_at(3)
                return super().fetch(path, accept=accept)

        with pytest.raises(InconsistentCheckpoint):
            monitor.check("a", Stale(log), _keys(log))
    finally:
        log.close()


class _At(LogFetcher):
    """A URL whose checkpoint is the log's at ``size`` (a mirror behind it)."""

    def __init__(self, log: Log, size: int) -> None:
        super().__init__(log)
        self.size = size

    def fetch(self, path: str, *, accept: str | None = None) -> bytes:
        if path == "checkpoint":
            return self.log.checkpoint_at(self.size)
        return super().fetch(path, accept=accept)


def test_a_mirror_behind_the_log_is_proven_consistent_at_the_next_round(
    store: MonitorStore, log_key: PrivateKey
) -> None:
    log = grown(log_key, entries(3), entries(5, 3))
    try:
        monitor = Monitor(store)
        monitor.check("a", LogFetcher(log), _keys(log))
        with pytest.raises(InconsistentCheckpoint, match="kept and proven consistent or a fork"):
            monitor.check("mirror", _At(log, 3), _keys(log))
        assert [b.size for b in store.behind(ORIGIN)] == [3]
        (event,) = monitor.check("a", LogFetcher(log), _keys(log))  # same size: tiles read
        assert (event.kind, event.url, event.size) == ("behind", "mirror", 3)
        assert store.behind(ORIGIN) == []
        assert store.forks() == []
    finally:
        log.close()


def test_a_smaller_split_view_is_reported_by_a_round_that_verifies(
    store: MonitorStore, log_key: PrivateKey
) -> None:
    """The round that would prove a kept smaller checkpoint a fork fails on the larger tree's
    entries (they do not give its root): it settles nothing, and the next round that verifies
    reports the fork (it was once kept and dropped in the failed round, reported nowhere)."""
    honest = grown(log_key, entries(3), entries(5, 3))
    forked = grown(log_key, entries(2), entries(3, 2, tag=b"evil"))
    other = grown(log_key, entries(10, tag=b"other"))
    try:
        monitor = Monitor(store)
        monitor.check("a", LogFetcher(honest), _keys(honest))
        with pytest.raises(InconsistentCheckpoint):
            monitor.check("b", LogFetcher(forked), _keys(forked))
        fill(honest, entries(2, 8))

        class LyingEntries(LogFetcher):
            def fetch(self, path: str, *, accept: str | None = None) -> bytes:
                if path.startswith("tile/entries"):
                    return LogFetcher(other).fetch(path, accept=accept)
                return super().fetch(path, accept=accept)

        with pytest.raises(VerificationFailed, match="entries"):
            monitor.check("a", LyingEntries(honest), _keys(honest))
        assert store.forks() == []
        assert len(store.behind(ORIGIN)) == 1
        events = monitor.check("a", LogFetcher(honest), _keys(honest))
        assert [(e.kind, e.url) for e in events] == [("fork", "b"), ("checkpoint", "a")]
        assert len(store.forks()) == 1
        assert store.behind(ORIGIN) == []
    finally:
        honest.close()
        forked.close()
        other.close()


@pytest.mark.parametrize("grows", [False, True], ids=["same-size", "grown"])
def test_a_smaller_split_view_is_proven_a_fork_at_the_next_round(
    store: MonitorStore, log_key: PrivateKey, grows: bool
) -> None:
    """A split view served at a smaller size than the one verified (the monitor read the
    honest log first) used to be only "the log went back": the monitor keeps the smaller
    signed checkpoint and, once it reads the verified tree again, proves the fork offline."""
    honest = grown(log_key, entries(3), entries(5, 3))
    forked = grown(log_key, entries(2), entries(3, 2, tag=b"evil"))
    try:
        monitor = Monitor(store)
        monitor.check("a", LogFetcher(honest), _keys(honest))
        with pytest.raises(InconsistentCheckpoint):
            monitor.check("b", LogFetcher(forked), _keys(forked))
        with pytest.raises(InconsistentCheckpoint):  # seen again: kept once
            monitor.check("b", LogFetcher(forked), _keys(forked))
        assert len(store.behind(ORIGIN)) == 1
        if grows:
            fill(honest, entries(2, 8))
        events = monitor.check("a", LogFetcher(honest), _keys(honest))
        assert [e.kind for e in events] == ["fork", "checkpoint"] if grows else ["fork"]
        assert events[0].url == "b"
        with pytest.raises(ForkDetected):
            Monitor.raise_for(events)
        ((_, origin, data, _),) = store.forks()
        assert origin == ORIGIN
        first, second = ForkProof.parse(data).verify(honest.note_verifiers)
        assert (first.size, second.size) == (5, 10 if grows else 8)
        assert first.root == forked.root()
        assert store.behind(ORIGIN) == []
        state = store.state(ORIGIN)
        assert state is not None
        assert state.size == (10 if grows else 8)  # the honest tree, which the fork does not move
    finally:
        honest.close()
        forked.close()


def test_a_kept_smaller_checkpoint_edited_apart_from_its_note_is_refused(
    tmp_path: Path, log_key: PrivateKey
) -> None:
    log = grown(log_key, entries(3), entries(5, 3))
    path = tmp_path / "monitor.db"
    try:
        store = MonitorStore(path)
        monitor = Monitor(store)
        monitor.check("a", LogFetcher(log), _keys(log))
        with pytest.raises(InconsistentCheckpoint):
            monitor.check("mirror", _At(log, 3), _keys(log))
        store.close()
        with sqlite3.connect(path) as db:
            db.execute("UPDATE behind SET root = zeroblob(32)")
        store = MonitorStore(path)
        with pytest.raises(StorageError, match=r"smaller checkpoint of .* not its note.s"):
            store.behind(ORIGIN)
        store.close()
    finally:
        log.close()


def test_a_smaller_empty_tree_is_refused_and_not_kept(
    store: MonitorStore, log_key: PrivateKey
) -> None:
    log = grown(log_key, entries(3))
    try:
        monitor = Monitor(store)
        monitor.check("a", LogFetcher(log), _keys(log))
        with pytest.raises(InconsistentCheckpoint):
            monitor.check("a", _At(log, 0), _keys(log))  # the empty tree: nothing to keep
        assert store.behind(ORIGIN) == []
    finally:
        log.close()


def test_tiles_or_entries_that_do_not_match_the_checkpoint_are_refused(
    store: MonitorStore, log_key: PrivateKey
) -> None:
    log = grown(log_key, entries(10))
    other = grown(log_key, entries(10, tag=b"other"))
    try:

        class LyingTiles(LogFetcher):
            def fetch(self, path: str, *, accept: str | None = None) -> bytes:
                if path == "checkpoint":
                    return self.log.checkpoint()
                return LogFetcher(other).fetch(path, accept=accept)

        class LyingEntries(LogFetcher):
            def fetch(self, path: str, *, accept: str | None = None) -> bytes:
                if path.startswith("tile/entries"):
                    return LogFetcher(other).fetch(path, accept=accept)
                return super().fetch(path, accept=accept)

        with pytest.raises(VerificationFailed, match="tiles"):
            Monitor(store).check("a", LyingTiles(log), _keys(log))
        with pytest.raises(VerificationFailed, match="entries"):
            Monitor(store).check("a", LyingEntries(log), _keys(log))
        assert store.state(ORIGIN) is None  # nothing was stored
    finally:
        log.close()
        other.close()


def test_a_checkpoint_by_another_key_is_refused(store: MonitorStore, log_key: PrivateKey) -> None:
    log = grown(log_key, entries(2))
    impostor = grown(PrivateKey.generate(Algorithm.ED25519), entries(2))
    try:
        with pytest.raises(UnknownIssuer):
            Monitor(store).check("a", LogFetcher(impostor), _keys(log))
    finally:
        log.close()
        impostor.close()


def test_the_monitor_can_require_witness_cosignatures(
    store: MonitorStore, log_key: PrivateKey
) -> None:
    log = grown(log_key, entries(2))
    try:
        key = PrivateKey.generate(Algorithm.ED25519)
        policy = WitnessPolicy((Cosigner("w.example/1", key).verifier(),), 1)
        with pytest.raises(InsufficientCosignatures):
            Monitor(store, witnesses=policy).check("a", LogFetcher(log), _keys(log))
    finally:
        log.close()


class CosignedFetcher(LogFetcher):
    """A log whose checkpoint carries a cosignature by each of ``cosigners``."""

    def __init__(self, log: Log, *cosigners: Cosigner) -> None:
        super().__init__(log)
        self.cosigners = cosigners

    def fetch(self, path: str, *, accept: str | None = None) -> bytes:
        if path != "checkpoint":
            return super().fetch(path, accept=accept)
        note = Note.parse(self.log.checkpoint())
        lines = tuple(c.cosign(note.body, 1_780_000_000) for c in self.cosigners)
        return Note(note.body, note.signatures + lines).encode()


def test_repeated_cosignature_lines_are_ignored_or_counted_once(
    store: MonitorStore, log_key: PrivateKey
) -> None:
    """The lines of a witness the monitor does not trust are ignored however often they
    repeat (the note parser refused the checkpoint as malformed); a trusted witness's line
    repeated counts once towards the quorum."""
    log = grown(log_key, entries(2))
    trusted = Cosigner("w.example/1", PrivateKey.generate(Algorithm.ED25519))
    other = Cosigner("w.example/2", PrivateKey.generate(Algorithm.ED25519))
    stranger = Cosigner("stranger.example", PrivateKey.generate(Algorithm.ED25519))
    try:
        one = WitnessPolicy((trusted.verifier(),), 1)
        fetcher = CosignedFetcher(log, stranger, stranger, trusted)
        Monitor(store, witnesses=one).check("a", fetcher, _keys(log))
        assert store.state(ORIGIN) is not None
        two = WitnessPolicy((trusted.verifier(), other.verifier()), 2)
        with pytest.raises(InsufficientCosignatures):
            Monitor(store, witnesses=two).check(
                "a", CosignedFetcher(log, trusted, trusted), _keys(log)
            )
    finally:
        log.close()


@pytest.mark.parametrize("forked_batches", [(6,), (3, 6)], ids=["same size", "larger"])
def test_a_fork_without_the_witness_quorum_is_still_kept_and_reported(
    store: MonitorStore, log_key: PrivateKey, forked_batches: tuple[int, ...]
) -> None:
    """A monitor that requires witness cosignatures, shown a split view the log signed but
    no witness cosigned: the two log-signed checkpoints prove the fork on their own, so it is
    kept and reported, not taken for a checkpoint merely short of cosignatures (and dropped).
    A consistent checkpoint short of the quorum is still refused, the state unchanged."""
    honest = grown(log_key, entries(6))
    forked = grown(log_key, *(entries(n, tag=b"evil") for n in forked_batches))
    grown_on = grown(log_key, entries(6), entries(3, 6))
    trusted = Cosigner("w.example/1", PrivateKey.generate(Algorithm.ED25519))
    try:
        monitor = Monitor(store, witnesses=WitnessPolicy((trusted.verifier(),), 1))
        monitor.check("a", CosignedFetcher(honest, trusted), _keys(honest))
        (event,) = monitor.check("b", LogFetcher(forked), _keys(forked))
        assert event.kind == "fork"
        ((_, origin, data, _),) = store.forks()
        assert origin == ORIGIN
        first, second = ForkProof.parse(data).verify(honest.note_verifiers)
        assert (first.size, second.size) == (6, forked.tree_size)
        with pytest.raises(InsufficientCosignatures):
            monitor.check("c", LogFetcher(grown_on), _keys(grown_on))
        state = store.state(ORIGIN)
        assert state is not None
        assert state.size == 6
    finally:
        honest.close()
        forked.close()
        grown_on.close()


class ConfiguredFetcher(LogFetcher):
    """A log that also serves its transparency configuration, naming ``origin``."""

    def __init__(self, log: Log, origin: str = ORIGIN) -> None:
        super().__init__(log)
        self.origin = origin

    def fetch(self, path: str, *, accept: str | None = None) -> bytes:
        if path == CONFIG_PATH:
            keys = [v.vkey for v in self.log.note_verifiers]
            return json.dumps({"checkpoint_origin": self.origin, "checkpoint_keys": keys}).encode()
        return super().fetch(path, accept=accept)


def test_a_checkpoint_for_another_origin_than_the_url_names_is_refused(
    store: MonitorStore, log_key: PrivateKey
) -> None:
    # One operator, one key, two logs: the URL's configuration names ORIGIN, but it serves the
    # checkpoints (and tiles) of another log signed by the same key. Followed as is, the
    # monitor would report that log and never look at ORIGIN at that URL.
    other = Log.open_memory(origin="log.example/other", note_signers=[NoteSigner(ORIGIN, log_key)])
    other.start()
    try:
        fill(other, entries(3))
        with pytest.raises(UnknownIssuer, match=r"log\.example/other"):
            Monitor(store).check("https://a.example", ConfiguredFetcher(other))
        key = PrivateKey.generate(Algorithm.ED25519)
        policy = WitnessPolicy((Cosigner("w.example/1", key).verifier(),), 1)
        with pytest.raises(UnknownIssuer, match=r"log\.example/other"):
            Monitor(store, witnesses=policy).check("https://a.example", ConfiguredFetcher(other))
        assert store.state("log.example/other") is None  # nothing was stored
        # The same log under a URL whose configuration names its own origin is followed.
        (event,) = Monitor(store).check(
            "https://b.example", ConfiguredFetcher(other, "log.example/other")
        )
        assert (event.kind, event.origin, event.size) == ("checkpoint", "log.example/other", 3)
    finally:
        other.close()


class NamingKeysFetcher(LogFetcher):
    """A log whose configuration names ORIGIN and ``keys`` (its own key among them)."""

    def __init__(self, log: Log, keys: list[str]) -> None:
        super().__init__(log)
        self.keys = keys

    def fetch(self, path: str, *, accept: str | None = None) -> bytes:
        if path == CONFIG_PATH:
            return json.dumps({"checkpoint_origin": ORIGIN, "checkpoint_keys": self.keys}).encode()
        return super().fetch(path, accept=accept)


def test_another_log_naming_the_origin_is_no_fork_of_it(
    store: MonitorStore, log_key: PrivateKey
) -> None:
    """A URL whose keys were trusted on first use serves a log of its own under the origin
    of a log already followed (its key names itself, or both keys): its checkpoints, at the
    same size or extending the honest tree, are refused, never taken for that log's fork
    nor stored as its state."""
    honest = grown(log_key, entries(4))
    evil_key = PrivateKey.generate(Algorithm.ED25519)
    evil = grown(evil_key, entries(4, tag=b"evil"))
    longer = grown(evil_key, entries(4), entries(3, 4, tag=b"evil"))
    both = [v.vkey for v in (*honest.note_verifiers, *evil.note_verifiers)]
    try:
        monitor = Monitor(store)
        monitor.check("https://log.example", ConfiguredFetcher(honest))
        with pytest.raises(UnknownIssuer, match="none of the keys"):
            monitor.check("https://evil.example", ConfiguredFetcher(evil))
        with pytest.raises(UnknownIssuer, match="none of the keys"):
            monitor.check("https://both.example", NamingKeysFetcher(evil, both))
        with pytest.raises(UnknownIssuer, match="none of the keys"):
            monitor.check("https://longer.example", ConfiguredFetcher(longer))
        assert store.forks() == []
        state = store.state(ORIGIN)
        assert state is not None
        assert state.note == honest.checkpoint()
        fill(honest, entries(2, 4))
        (event,) = monitor.check("https://log.example", ConfiguredFetcher(honest))
        assert (event.kind, event.size) == ("checkpoint", 6)
    finally:
        honest.close()
        evil.close()
        longer.close()


def test_new_entries_are_read_one_bundle_at_a_time(
    store: MonitorStore, log_key: PrivateKey
) -> None:
    # A first look at a large log reads all of it: what the monitor holds at once is one
    # entry bundle, not every new entry (about 12 MiB here, 6 bundles of 2 MiB).
    big = [b"%05d" % i + bytes(8187) for i in range(6 * 256)]
    log = grown(log_key, big)
    try:
        fetcher = LogFetcher(log)
        tracemalloc.start()
        try:
            (event,) = Monitor(store).check("a", fetcher, _keys(log))
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert (event.kind, event.size) == ("checkpoint", len(big))
        total = sum(map(len, big))
        assert peak < total / 2, f"peak {peak} bytes for {total} bytes of entries"
    finally:
        log.close()


def test_tiles_that_give_the_root_but_not_the_proof_are_no_fork(
    store: MonitorStore, log_key: PrivateKey
) -> None:
    # At size 300 the root is read from the level-1 tile (the first 256 leaves are one hash
    # there), while the consistency proof from 100 is made of nodes of the level-0 tile. A
    # mirror without the log's key that serves the level-1 tile as it is and a level-0 tile
    # with one hash changed passes the root check; the proof it gives then leads to another
    # root at size 100, but not to the checkpoint's root at 300: that shows lying tiles, not
    # a fork, and no fork proof can be made of it.
    log = grown(log_key, entries(100), entries(200, 100))
    try:
        monitor = Monitor(store)

        class AtHundred(LogFetcher):
            def fetch(self, path: str, *, accept: str | None = None) -> bytes:
                if path == "checkpoint":
                    return self.log.checkpoint_at(100)
                return super().fetch(path, accept=accept)

        monitor.check("a", AtHundred(log), _keys(log))

        class TamperedTile(LogFetcher):
            def fetch(self, path: str, *, accept: str | None = None) -> bytes:
                data = super().fetch(path, accept=accept)
                if path == "tile/0/000":
                    data = data[: 40 * 32] + bytes(32) + data[41 * 32 :]
                return data

        with pytest.raises(VerificationFailed, match="tiles"):
            monitor.check("a", TamperedTile(log), _keys(log))
        assert store.forks() == []
        state = store.state(ORIGIN)
        assert state is not None
        assert state.size == 100  # not advanced
        # the honest tiles advance it
        (event,) = monitor.check("a", LogFetcher(log), _keys(log))
        assert (event.kind, event.size) == ("checkpoint", 300)
    finally:
        log.close()


def test_state_persists_and_a_foreign_file_is_refused(tmp_path: Path, log_key: PrivateKey) -> None:
    log = grown(log_key, entries(2))
    try:
        path = tmp_path / "monitor.sqlite3"
        store = MonitorStore(path)
        Monitor(store).check("a", LogFetcher(log), _keys(log))
        store.close()
        again = MonitorStore(path, create=False)
        assert [s.size for s in again.states()] == [2]
        again.close()
        (tmp_path / "junk").write_bytes(b"this is not SQLite at all" * 10)
        with pytest.raises(StorageError):
            MonitorStore(tmp_path / "junk")
        with pytest.raises(StorageError):
            MonitorStore(tmp_path / "absent", create=False)
    finally:
        log.close()


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("root", bytes(32)),  # a root damaged or edited: the log "forked" at the same size
        ("note", None),  # an older checkpoint's note restored beside the newer size and root
        ("compact", None),  # the compact range of the older tree
    ],
)
def test_a_state_row_that_is_not_what_was_verified_is_no_fork(
    tmp_path: Path, log_key: PrivateKey, column: str, value: bytes | None
) -> None:
    log = grown(log_key, entries(3), entries(3, 3))
    try:
        path = tmp_path / "monitor.sqlite3"
        older = MonitorStore(":memory:")

        class Stale(LogFetcher):
            def fetch(self, path: str, *, accept: str | None = None) -> bytes:
                if path == "checkpoint":
                    return self.log.checkpoint_at(3)
                return super().fetch(path, accept=accept)

        Monitor(older).check("a", Stale(log), _keys(log))
        old = older.state(ORIGIN)
        assert old is not None
        older.close()
        store = MonitorStore(path)
        Monitor(store).check("a", LogFetcher(log), _keys(log))
        store.close()
        values = {"note": old.note, "compact": b"".join(old.compact), "root": value}
        db = sqlite3.connect(path)
        db.execute(f"UPDATE logs SET {column} = ?", (values[column],))  # noqa: S608
        db.commit()
        db.close()
        store = MonitorStore(path)
        try:
            with pytest.raises(StorageError, match="monitor database holds a"):
                Monitor(store).check("a", LogFetcher(log), _keys(log))
            assert store.forks() == []
        finally:
            store.close()
    finally:
        log.close()


def test_two_monitors_sharing_a_state_file_never_move_it_back(
    tmp_path: Path, log_key: PrivateKey
) -> None:
    """A lagging mirror (size 5) checked by one monitor while another stores size 7: the
    slower one's write used to replace 7 with 5 (the state went back); it is a Conflict."""
    log = grown(log_key, entries(3), entries(2, 3), entries(2, 5))
    path = tmp_path / "monitor.sqlite3"
    ahead, behind = MonitorStore(path), MonitorStore(path)

    class At(LogFetcher):
        def __init__(self, log: Log, size: int, meanwhile: object = None) -> None:
            super().__init__(log)
            self.size, self.meanwhile = size, meanwhile

        def fetch(self, path: str, *, accept: str | None = None) -> bytes:
            if path == "checkpoint":
                return self.log.checkpoint_at(self.size)
            if callable(self.meanwhile) and "/entries/" in path:
                meanwhile, self.meanwhile = self.meanwhile, None
                meanwhile()
            return super().fetch(path, accept=accept)

    try:
        Monitor(ahead).check("u", At(log, 3), _keys(log))

        def other() -> None:
            Monitor(ahead).check("u", At(log, 7), _keys(log))

        with pytest.raises(Conflict, match=r"another monitor stored .* at size 7 meanwhile"):
            Monitor(behind).check("mirror", At(log, 5, other), _keys(log))
        state = behind.state(ORIGIN)
        assert state is not None
        assert state.size == 7
        # its next round checks the mirror against size 7
        with pytest.raises(InconsistentCheckpoint, match="smaller than the size 7"):
            Monitor(behind).check("mirror", At(log, 5), _keys(log))
    finally:
        ahead.close()
        behind.close()
        log.close()


def test_a_fork_proof_that_proves_nothing_is_refused(log_key: PrivateKey) -> None:
    log = grown(log_key, entries(3), entries(3, 3))
    try:
        consistent = ForkProof(
            ORIGIN,
            log.checkpoint_at(3),
            log.checkpoint(),
            tuple(log.consistency_proof(3, 6)),
        )
        with pytest.raises(InvalidProof, match="consistent"):
            consistent.verify(log.note_verifiers)
        garbage = ForkProof(ORIGIN, log.checkpoint_at(3), log.checkpoint(), (bytes(32),) * 3)
        with pytest.raises(InvalidProof):
            garbage.verify(log.note_verifiers)
        same = ForkProof(ORIGIN, log.checkpoint(), log.checkpoint())
        with pytest.raises(InvalidProof, match="same tree"):
            same.verify(log.note_verifiers)
        stranger = PrivateKey.generate(Algorithm.ED25519)
        with pytest.raises(UnknownIssuer):
            same.verify([NoteVerifier(ORIGIN, stranger.public_key)])
    finally:
        log.close()


# --- the CLI, against real services --------------------------------------------------------


@pytest.mark.slow  # the monitor and witness CLIs end to end (make test)
def test_monitor_and_witness_cli_end_to_end(
    tmp_path: Path,
    vendor: PrivateKey,
    log_key: PrivateKey,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from witness_testkit import TS_ORIGIN, service_dir

    from ironroot.transparency import ServiceThread, TransparencyClient, TransparencyService
    from ironroot.witness import WitnessThread, open_witness

    log_vkey = NoteVerifier(TS_ORIGIN, log_key.public_key).vkey
    wdir = tmp_path / "witness"
    assert main(["witness", "init", "--data", str(wdir), "--name", "w.example/1"]) == 0
    witness_vkey = capsys.readouterr().out.splitlines()[-1]
    assert main(["witness", "add-log", "--data", str(wdir), log_vkey]) == 0
    capsys.readouterr()

    honest = service_dir(tmp_path / "a", vendor, checkpoint_key=log_key)
    forked = service_dir(tmp_path / "b", vendor, checkpoint_key=log_key)
    state = str(tmp_path / "monitor.sqlite3")
    witness = open_witness(wdir)
    with (
        WitnessThread(witness) as wserver,
        TransparencyService.open(honest) as a,
        TransparencyService.open(forked) as b,
        ServiceThread(a) as aserver,
        ServiceThread(b) as bserver,
    ):
        with TransparencyClient(aserver.url) as client:
            client.register(statement(vendor, "pkg:fw/bmc"))
            client.register(statement(vendor, "pkg:fw/nic"))
            client.register(statement(vendor, "pkg:fw/gpu"))
        with TransparencyClient(bserver.url) as client:
            for sub in ("x", "y", "z", "w", "v"):
                client.register(statement(vendor, f"pkg:fw/{sub}"))

        base = ["monitor", "once", "--state", state, "--key", log_vkey]
        code = main([*base, "--url", aserver.url, "--watch-sub", "pkg:fw/bmc", "--json"])
        doc = json.loads(capsys.readouterr().out)
        assert code == 3, doc  # a watched statement
        assert [e["event"] for e in doc["events"]] == ["checkpoint", "statement"]
        assert main([*base, "--url", aserver.url]) == 0  # nothing new
        capsys.readouterr()
        assert main([*base, "--url", bserver.url, "--json"]) == 1  # the split view
        doc = json.loads(capsys.readouterr().out)
        assert doc["ok"] is False
        assert doc["error"]["code"] == "fork-detected"
        assert main(["monitor", "forks", "--state", state, "--out-dir", str(tmp_path / "f")]) == 0
        capsys.readouterr()
        proof_file = str(tmp_path / "f" / "fork-1.json")
        assert main(["monitor", "verify-fork", proof_file, "--key", log_vkey, "--json"]) == 0
        assert json.loads(capsys.readouterr().out)["fork"] is True
        assert main(["monitor", "status", "--state", state, "--json"]) == 0
        assert json.loads(capsys.readouterr().out)["forks"] == 1

        # the witness cosigns the honest log, then refuses the fork and keeps the proof
        wbase = ["witness", "cosign", "--url", wserver.url, "--witness-key", witness_vkey]
        assert main([*wbase, "--log-url", aserver.url, "--json"]) == 0
        doc = json.loads(capsys.readouterr().out)
        assert doc["cosignatures"] == ["w.example/1"]
        Note.parse(doc["checkpoint"].encode())
        assert main([*wbase, "--log-url", bserver.url, "--json"]) == 1
        assert json.loads(capsys.readouterr().out)["error"]["code"] == "fork-detected"
        assert main(["witness", "show", "--data", str(wdir), "--json"]) == 0
        shown = json.loads(capsys.readouterr().out)
        assert shown["logs"][0]["cosigned_size"] == 3
        assert shown["evidence"] == 1
        out_dir = tmp_path / "wf"
        assert main(["witness", "evidence", "--data", str(wdir), "--out-dir", str(out_dir)]) == 0
        capsys.readouterr()
        wproof = str(out_dir / "fork-1.json")
        assert main(["monitor", "verify-fork", wproof, "--key", log_vkey]) == 0
        assert "fork proven" in capsys.readouterr().out
        # follow: one round, events as JSON lines
        code = main(
            [
                "monitor", "follow", "--state", str(tmp_path / "m2.sqlite3"), "--key", log_vkey,
                "--url", aserver.url, "--watch-iss", VENDOR, "--rounds", "1", "--json",
            ]
        )  # fmt: skip
        lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
        assert code == 3
        assert [x["event"] for x in lines] == ["checkpoint", "statement", "statement", "statement"]
    witness.close()


@pytest.mark.parametrize("interval", ["nan", "inf", "1e999", "0", "-1", "1e12"])
def test_follow_refuses_an_interval_it_cannot_sleep(
    interval: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # NaN passed ``interval <= 0`` and reached time.sleep (ValueError), inf and 1e12 overflow
    # it: each an internal error after the first round, or a wait of centuries
    argv = ["monitor", "follow", "--state", str(tmp_path / "state"),
            "--url", "http://127.0.0.1:9", "--interval", interval, "--json"]  # fmt: skip
    assert main(argv) == 2
    captured = capsys.readouterr()
    error = json.loads(captured.out)["error"]
    assert error["code"] == "config"
    assert "--interval" in error["message"]
    assert "Traceback" not in captured.err


class _EndlessLog:
    """A hostile log of ``size`` copies of one entry: it signs the root its tiles give, and
    serves every tile and bundle of a tree no monitor can read to the end."""

    def __init__(self, key: PrivateKey, size: int) -> None:
        self.signer = NoteSigner("hostile.example/log", key)
        nodes = [leaf_hash(b"same")]
        while len(nodes) < 64:
            nodes.append(node_hash(nodes[-1], nodes[-1]))
        self._nodes = nodes
        checkpoint = Checkpoint(self.signer.name, size, nodes[size.bit_length() - 1])
        self._note = sign_checkpoint(checkpoint, [self.signer])
        self.fetched = 0

    def fetch(self, path: str, *, accept: str | None = None) -> bytes:
        self.fetched += 1
        if path == "checkpoint":
            return self._note
        if path.startswith("tile/entries/"):
            return encode_entry_bundle([b"same"] * 256)
        address = parse_tile_path(path)
        return self._nodes[8 * address.level] * address.count


@pytest.mark.parametrize("bits", [25, 40, 62])
def test_a_log_that_jumps_too_far_is_refused_before_its_entries_are_read(
    store: MonitorStore, log_key: PrivateKey, bits: int
) -> None:
    # It used to read 2^(bits-8) entry bundles in one round, storing nothing and holding up
    # every URL after it in the round, for as long as the log kept serving them.
    hostile = _EndlessLog(log_key, 1 << bits)
    with pytest.raises(LimitExceeded, match=r"more than the 16777216 one check reads"):
        Monitor(store).check("u", hostile, [hostile.signer.verifier()])
    assert hostile.fetched < 64  # the checkpoint and the tiles of the root: no bundle
    assert store.state("hostile.example/log") is None


def test_the_limit_on_new_entries_counts_from_the_verified_size(
    store: MonitorStore, log_key: PrivateKey
) -> None:
    log = grown(log_key, entries(5))
    try:
        (event,) = Monitor(store, max_new_entries=5).check("a", LogFetcher(log), _keys(log))
        assert (event.kind, event.size) == ("checkpoint", 5)
        fill(log, entries(6, 5))
        with pytest.raises(LimitExceeded, match="6 entries beyond the size 5 verified"):
            Monitor(store, max_new_entries=5).check("a", LogFetcher(log), _keys(log))
        state = store.state(ORIGIN)
        assert state is not None
        assert state.size == 5
        (event,) = Monitor(store, max_new_entries=6).check("a", LogFetcher(log), _keys(log))
        assert (event.kind, event.size) == ("checkpoint", 11)
    finally:
        log.close()


def test_a_fork_beyond_the_limit_is_still_proven(store: MonitorStore, log_key: PrivateKey) -> None:
    honest = grown(log_key, entries(5))
    forked = grown(log_key, entries(4), entries(7, 100))
    try:
        Monitor(store).check("a", LogFetcher(honest), _keys(honest))
        (event,) = Monitor(store, max_new_entries=1).check("b", LogFetcher(forked), _keys(forked))
        assert event.kind == "fork"
    finally:
        honest.close()
        forked.close()


@pytest.mark.parametrize("value", ["0", "-1"])
def test_the_cli_refuses_a_limit_on_new_entries_below_one(
    value: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["monitor", "once", "--state", str(tmp_path / "state"),
            "--url", "http://127.0.0.1:9", "--max-new-entries", value, "--json"]  # fmt: skip
    assert main(argv) == 2
    error = json.loads(capsys.readouterr().out)["error"]
    assert (error["code"], error["message"]) == ("config", "--max-new-entries is at least 1")


def test_a_log_grown_past_the_limit_is_the_logs_failure_exit_1(
    tmp_path: Path, vendor: PrivateKey, log_key: PrivateKey, capsys: pytest.CaptureFixture[str]
) -> None:
    """The limit on new entries is about what the log served, not what the caller typed: one
    ``--url`` grown past ``--max-new-entries`` exits 1 (``limit-exceeded``), as docs/witness.md
    says, not 2 (usage); the verified state stays where it was."""
    from witness_testkit import TS_ORIGIN, service_dir

    from ironroot.transparency import ServiceThread, TransparencyClient, TransparencyService

    log_vkey = NoteVerifier(TS_ORIGIN, log_key.public_key).vkey
    directory = service_dir(tmp_path / "ts", vendor, checkpoint_key=log_key)
    state = str(tmp_path / "monitor.sqlite3")
    with TransparencyService.open(directory) as service, ServiceThread(service) as server:
        base = ["monitor", "once", "--state", state, "--key", log_vkey, "--url", server.url]
        with TransparencyClient(server.url) as client:
            for sub in ("a", "b"):
                client.register(statement(vendor, f"pkg:fw/{sub}"))
        assert main([*base, "--max-new-entries", "2"]) == 0
        with TransparencyClient(server.url) as client:
            for sub in ("c", "d", "e"):
                client.register(statement(vendor, f"pkg:fw/{sub}"))
        capsys.readouterr()
        assert main([*base, "--max-new-entries", "2", "--json"]) == 1
        error = json.loads(capsys.readouterr().out)["error"]
        assert error["code"] == "limit-exceeded"
        assert "3 entries beyond the size 2 verified" in error["message"]
        assert main(["monitor", "status", "--state", state, "--json"]) == 0
        assert [log["size"] for log in json.loads(capsys.readouterr().out)["logs"]] == [2]


@pytest.mark.parametrize("value", [0, -1, True, 2.5])
def test_a_monitor_refuses_a_limit_on_new_entries_that_is_no_count(
    store: MonitorStore, value: object
) -> None:
    with pytest.raises(ConfigError, match="the most new entries a check reads"):
        Monitor(store, max_new_entries=value)  # type: ignore[arg-type]


def test_a_log_read_past_the_check_deadline_is_unreachable(
    store: MonitorStore, log_key: PrivateKey
) -> None:
    # Each resource answered within its own timeout, but a log with many of them held the
    # round (and every URL after it) for as long as it liked: the whole check has a deadline.
    hostile = _EndlessLog(log_key, 1 << 20)
    ticks = iter(range(0, 10_000, 10))  # every read of the clock: 10 s later
    paths: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        paths.append(request.url.path)
        return httpx.Response(200, content=hostile.fetch(request.url.path.removeprefix("/")))

    client = httpx.Client(transport=httpx.MockTransport(answer))
    fetcher = HttpLogFetcher(
        "http://log.test", client=client, deadline=45, clock=lambda: next(ticks)
    )
    with pytest.raises(Unreachable) as raised:
        Monitor(store).check("http://log.test", fetcher, [hostile.signer.verifier()])
    assert raised.value.detail == (
        "cannot reach http://log.test/tile/entries/002: the log was not read within 45 s"
    )
    assert len(paths) == 4  # read at 10, 20, 30, 40 s; the fifth, at 50 s, not asked for
    assert store.state("hostile.example/log") is None
    client.close()


@pytest.mark.parametrize("deadline", [0.0, -1.0, float("nan"), float("inf")])
def test_a_log_reader_refuses_a_deadline_that_is_no_time(deadline: float) -> None:
    with pytest.raises(MalformedInput, match="a log reader's deadline is a number of seconds"):
        HttpLogFetcher("http://log.test", deadline=deadline)


@pytest.mark.parametrize("value", ["0", "-1", "nan", "inf", "604801"])
def test_the_cli_refuses_a_check_timeout_that_is_no_time(
    value: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["monitor", "once", "--state", str(tmp_path / "state"),
            "--url", "http://127.0.0.1:9", "--check-timeout", value, "--json"]  # fmt: skip
    assert main(argv) == 2
    error = json.loads(capsys.readouterr().out)["error"]
    assert error["code"] == "config"
    assert error["message"].startswith("--check-timeout is a number of seconds above 0")


def test_a_log_that_redirects_is_a_config_error_naming_where_never_followed(
    tmp_path: Path, log_key: PrivateKey, capsys: pytest.CaptureFixture[str]
) -> None:
    """A 3xx was a ``StorageError`` ("answered 302") as if the log had failed: now the monitor
    user reads that the URL redirects, and where, and nothing is read from there."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    from ironroot.http import ServerThread

    log = grown(log_key, entries(3))
    asked: list[str] = []

    async def elsewhere(request: Request) -> Response:
        asked.append(request.url.path)
        return Response(LogFetcher(log).fetch(request.url.path.lstrip("/")))

    async def moved(request: Request) -> Response:
        return Response(status_code=301, headers={"Location": f"{target.url}/log/checkpoint"})

    try:
        with (
            ServerThread(Starlette(routes=[Route("/{p:path}", elsewhere)])) as target,
            ServerThread(Starlette(routes=[Route("/{p:path}", moved)])) as server,
        ):
            argv = ["monitor", "once", "--state", str(tmp_path / "state"),
                    "--url", server.url, "--key", _keys(log)[0].vkey, "--json"]  # fmt: skip
            code = main(argv)
    finally:
        log.close()
    captured = capsys.readouterr()
    assert code == 2
    error = json.loads(captured.out)["error"]
    assert error["code"] == "redirect"
    assert f"answered 301, a redirect to {target.url}/log/checkpoint" in error["message"]
    assert asked == []
    assert "Traceback" not in captured.err
