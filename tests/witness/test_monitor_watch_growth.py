"""A watch that grows (a new ``--watch-sub``, a new fleet class): the entries the monitor
verified before were never read for the new subject or issuer. It used to go on from its
state and never report a statement about it registered before; it reads the verified tree
again for what is newly watched, once."""

from __future__ import annotations

from pathlib import Path

import pytest
from witness_testkit import VENDOR, LogFetcher, entries, fill, grown, statement

from ironroot.crypto import Algorithm, PrivateKey
from ironroot.errors import InconsistentCheckpoint, LimitExceeded, VerificationFailed
from ironroot.log import parse_tile_path
from ironroot.monitor import Monitor, MonitorStore, Watch

BMC = Watch(frozenset({"pkg:fw/bmc"}))


@pytest.fixture
def log_key() -> PrivateKey:
    return PrivateKey.generate(Algorithm.ED25519)


@pytest.fixture
def vendor() -> PrivateKey:
    return PrivateKey.generate(Algorithm.ES256)


def test_a_subject_watched_later_is_found_in_what_was_verified_before(
    tmp_path: Path, log_key: PrivateKey, vendor: PrivateKey
) -> None:
    log = grown(log_key, [b"x", statement(vendor, "pkg:fw/bmc"), b"y"])
    store = MonitorStore(tmp_path / "monitor.sqlite3")
    try:
        assert [e.kind for e in Monitor(store).check("a", LogFetcher(log), log.note_verifiers)] == [
            "checkpoint"
        ]
        # the same checkpoint, now watching pkg:fw/bmc: the old monitor answered []
        (event,) = Monitor(store, watch=BMC).check("a", LogFetcher(log), log.note_verifiers)
        assert (event.kind, event.index, event.sub, event.watched) == (
            "statement",
            1,
            "pkg:fw/bmc",
            ("sub",),
        )
        assert event.detail == "verified before it was watched"
        # read once: the next round has nothing new, and a growing log only its new entries
        assert Monitor(store, watch=BMC).check("a", LogFetcher(log), log.note_verifiers) == []
        fill(log, [statement(vendor, "pkg:fw/bmc", b"2")])
        events = Monitor(store, watch=BMC).check("a", LogFetcher(log), log.note_verifiers)
        assert [(e.kind, e.index) for e in events] == [("checkpoint", None), ("statement", 3)]
    finally:
        store.close()
        log.close()


def test_a_new_issuer_on_a_grown_log_is_read_in_the_old_entries_too(
    tmp_path: Path, log_key: PrivateKey, vendor: PrivateKey
) -> None:
    log = grown(log_key, [statement(vendor, "pkg:fw/a")])
    store = MonitorStore(tmp_path / "monitor.sqlite3")
    try:
        Monitor(store, watch=BMC).check("a", LogFetcher(log), log.note_verifiers)
        fill(log, [statement(vendor, "pkg:fw/b")])
        both = Watch(frozenset({"pkg:fw/bmc"}), frozenset({VENDOR}))
        events = Monitor(store, watch=both).check("a", LogFetcher(log), log.note_verifiers)
        assert [(e.kind, e.index, e.detail) for e in events] == [
            ("statement", 0, "verified before it was watched"),
            ("checkpoint", None, "1 new entries verified, consistent with size 1"),
            ("statement", 1, ""),
        ]
        # entries verified while nothing was watched are read again when it is watched again
        fill(log, [b"z"])
        Monitor(store).check("a", LogFetcher(log), log.note_verifiers)
        assert store.watched(log.origin) == frozenset({("", "")})
        events = Monitor(store, watch=both).check("a", LogFetcher(log), log.note_verifiers)
        assert [(e.kind, e.index) for e in events] == [("statement", 0), ("statement", 1)]
    finally:
        store.close()
        log.close()


def test_old_entries_read_again_must_give_the_verified_root(
    tmp_path: Path, log_key: PrivateKey, vendor: PrivateKey
) -> None:
    """A URL that serves the right tiles but other entries for what was verified before."""
    log = grown(log_key, entries(3))
    store = MonitorStore(tmp_path / "monitor.sqlite3")

    class OtherEntries(LogFetcher):
        def fetch(self, path: str, *, accept: str | None = None) -> bytes:
            data = super().fetch(path, accept=accept)
            if path != "checkpoint" and parse_tile_path(path).entries:
                return data.replace(b"entry 1", b"entry 9")
            return data

    try:
        Monitor(store).check("a", LogFetcher(log), log.note_verifiers)
        with pytest.raises(VerificationFailed, match="do not give the root verified at size 3"):
            Monitor(store, watch=BMC).check("b", OtherEntries(log), log.note_verifiers)
        assert store.watched(log.origin) == frozenset({("", "")})  # still to be read
    finally:
        store.close()
        log.close()


class _Counting(LogFetcher):
    """The log's read API, counting the entry bundles read."""

    bundles = 0

    def fetch(self, path: str, *, accept: str | None = None) -> bytes:
        if path != "checkpoint" and parse_tile_path(path).entries:
            self.bundles += 1
        return super().fetch(path, accept=accept)


def test_reading_the_verified_entries_again_is_bounded_like_new_entries(
    tmp_path: Path, log_key: PrivateKey, vendor: PrivateKey
) -> None:
    """The read for a newly watched subject had no limit of its own: with --max-new-entries 4
    it read all the verified entries again (a large log's whole history in one round). It is
    refused now before any entry is read, and read once the limit allows it."""
    log = grown(log_key, [b"x", statement(vendor, "pkg:fw/bmc"), b"y", b"z", b"w"])
    store = MonitorStore(tmp_path / "monitor.sqlite3")
    try:
        Monitor(store).check("a", LogFetcher(log), log.note_verifiers)
        for grow in (False, True):  # the same checkpoint, then a larger one
            if grow:
                fill(log, [b"v"])
            fetcher = _Counting(log)
            with pytest.raises(LimitExceeded) as info:
                Monitor(store, watch=BMC, max_new_entries=4).check("a", fetcher, log.note_verifiers)
            assert info.value.code == "read-again-limit"
            assert "newly watched sub pkg:fw/bmc: the 5 entries of" in info.value.detail
            assert "more than the 4 one check reads again" in info.value.detail
            assert fetcher.bundles == 0
            state = store.state(log.origin)
            assert state is not None
            assert state.size == 5  # nothing advanced
            assert store.watched(log.origin) == frozenset({("", "")})  # still to be read
        events = Monitor(store, watch=BMC, max_new_entries=5).check(
            "a", LogFetcher(log), log.note_verifiers
        )
        assert [(e.kind, e.index, e.detail) for e in events][:2] == [
            ("statement", 1, "verified before it was watched"),
            ("checkpoint", None, "1 new entries verified, consistent with size 5"),
        ]
    finally:
        store.close()
        log.close()


def test_a_mirror_behind_is_settled_before_the_limit_on_reading_again_refuses(
    tmp_path: Path, log_key: PrivateKey
) -> None:
    log = grown(log_key, entries(3))
    old_note = log.checkpoint()
    fill(log, entries(2, 3))
    store = MonitorStore(tmp_path / "monitor.sqlite3")

    class Mirror(LogFetcher):
        def fetch(self, path: str, *, accept: str | None = None) -> bytes:
            return old_note if path == "checkpoint" else super().fetch(path, accept=accept)

    try:
        Monitor(store).check("a", LogFetcher(log), log.note_verifiers)
        with pytest.raises(InconsistentCheckpoint):
            Monitor(store).check("mirror", Mirror(log), log.note_verifiers)
        watching = Monitor(store, watch=BMC, max_new_entries=4)
        (event,) = watching.check("a", LogFetcher(log), log.note_verifiers)
        assert (event.kind, event.url, event.size) == ("behind", "mirror", 3)
        with pytest.raises(LimitExceeded, match="more than the 4 one check reads again"):
            watching.check("a", LogFetcher(log), log.note_verifiers)
    finally:
        store.close()
        log.close()
