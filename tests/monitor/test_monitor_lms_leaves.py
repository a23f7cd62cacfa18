"""The monitor alerts on a one-time key used twice: an LMS leaf that a newly logged firmware
manifest statement names (its protected header ``ironroot-lms-leaves``) for another signature
than an earlier statement on the log, or on another followed log, did (``lms-leaf-reused``).

The monitor layer knows nothing of firmware: it runs the per-entry checks it is given
(:class:`ironroot.monitor.EntryCheck`) and keeps each one-time key use in its state, so a
restart still finds reuse against what it saw before; ``ironroot monitor`` wires in the LMS
leaf check. Real transparency services, in-process; real LMS releases."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
from tests.firmware._fw_helpers import LMS_TEST_LIMITS, RestoredLms, Vendor, mldsa_vendor
from tests.witness.witness_testkit import VENDOR, service_dir

from ironroot.cli import main
from ironroot.cose import HASH_SHA384, create_statement
from ironroot.crypto import Algorithm, PrivateKey
from ironroot.errors import ConfigError, StorageError
from ironroot.firmware import (
    LMS_LEAVES_HEADER,
    MANIFEST_CONTENT_TYPE,
    PqcKeyType,
    entry_lms_leaves,
    logged_lms_leaves,
    manifest_statement,
)
from ironroot.monitor import Monitor, MonitorStore, OneTimeKeyUse
from ironroot.transparency import ServiceThread, TransparencyClient, TransparencyService

SUB = "pkg:firmware/acme/roadrunner-bmc"
KEY = PrivateKey.generate(Algorithm.ES384)
ORIGIN_A = "transparency.example/a"
ORIGIN_B = "transparency.example/b"


def _restored_vendor() -> Vendor:
    """A vendor whose LMS signer state is restored before each signature: leaf 0 each time."""
    return Vendor(
        ecc=[PrivateKey.generate(Algorithm.ES384)],
        pqc=[RestoredLms()],
        pqc_type=PqcKeyType.LMS,
        limits=LMS_TEST_LIMITS,
    )


def _statement(bundle: bytes, sub: str = SUB) -> bytes:
    return manifest_statement(bundle, KEY, iss=VENDOR, sub=sub, limits=LMS_TEST_LIMITS)


@pytest.fixture(scope="module")
def releases() -> tuple[bytes, bytes]:
    """Two releases signed by one LMS key with leaf 0 each (a restored signer state)."""
    vendor = _restored_vendor()
    first, second = (vendor.sign(vendor.build(svn=svn)) for svn in (5, 6))
    return first, second


class _Logs:
    """Transparency services in-process, one per origin, each trusting ``KEY``."""

    def __init__(self, stack: ExitStack, tmp_path: Path) -> None:
        self.url: dict[str, str] = {}
        for origin in (ORIGIN_A, ORIGIN_B):
            directory = service_dir(tmp_path / origin.replace("/", "_"), KEY, origin=origin)
            service = stack.enter_context(TransparencyService.open(directory))
            self.url[origin] = stack.enter_context(ServiceThread(service)).url

    def register(self, origin: str, statement: bytes) -> None:
        with TransparencyClient(self.url[origin]) as client:
            client.register(statement)


@pytest.fixture
def logs(tmp_path: Path) -> Iterator[_Logs]:
    with ExitStack() as stack:
        yield _Logs(stack, tmp_path)


def _once(state: Path, *urls: str, json_out: bool = True) -> list[str]:
    argv = ["monitor", "once", "--state", str(state)]
    for url in urls:
        argv += ["--url", url]
    return [*argv, "--json"] if json_out else argv


def _reused(
    logs: _Logs, first: tuple[str, int, bytes], later: tuple[str, int, bytes], size: int
) -> dict[str, object]:
    (one,), (two,) = (logged_lms_leaves(s) for s in (first[2], later[2]))
    return {
        "event": "lms-leaf-reused",
        "origin": later[0],
        "url": logs.url[later[0]],
        "size": size,
        "index": later[1],
        "entry_id": hashlib.sha256(later[2]).hexdigest(),
        "detail": (
            f"key {one.key_hash.hex()[:16]}… used leaf 0 for two signatures: entry"
            f" #{first[1]} of {first[0]} and entry #{later[1]} of {later[0]}; a one-time key"
            " used twice lets anyone forge its signatures"
        ),
        "key_hash": one.key_hash.hex(),
        "leaf": 0,
        "signature_hash": two.signature_hash.hex(),
        "first_origin": first[0],
        "first_index": first[1],
        "first_signature_hash": one.signature_hash.hex(),
    }


def test_a_second_release_reusing_a_leaf_on_the_log_is_an_alert(
    tmp_path: Path,
    logs: _Logs,
    releases: tuple[bytes, bytes],
    capsys: pytest.CaptureFixture[str],
) -> None:
    s1, s2 = (_statement(b) for b in releases)
    plain = mldsa_vendor()
    other = manifest_statement(plain.sign(plain.build()), KEY, iss=VENDOR, sub=SUB)
    for statement in (s1, other, s2):
        logs.register(ORIGIN_A, statement)
    state = tmp_path / "monitor.sqlite3"
    assert main(_once(state, logs.url[ORIGIN_A])) == 1
    doc = json.loads(capsys.readouterr().out)
    assert [e["event"] for e in doc["events"]] == ["checkpoint", "lms-leaf-reused"]
    assert doc["events"][1] == _reused(logs, (ORIGIN_A, 0, s1), (ORIGIN_A, 2, s2), 3)
    assert doc["error"] == {
        "code": "lms-leaf-reused",
        "message": f"LMS-LEAF-REUSED {ORIGIN_A} #2: {doc['events'][1]['detail']}",
        "check": None,
    }
    # found once: the next round has nothing new, and says nothing
    assert main(_once(state, logs.url[ORIGIN_A], json_out=False)) == 0
    assert capsys.readouterr().out == ""


def test_the_text_output_names_both_entries(
    tmp_path: Path,
    logs: _Logs,
    releases: tuple[bytes, bytes],
    capsys: pytest.CaptureFixture[str],
) -> None:
    s1, s2 = (_statement(b) for b in releases)
    logs.register(ORIGIN_A, s1)
    logs.register(ORIGIN_A, s2)
    assert main(_once(tmp_path / "m.sqlite3", logs.url[ORIGIN_A], json_out=False)) == 1
    lines = capsys.readouterr().out.splitlines()
    detail = _reused(logs, (ORIGIN_A, 0, s1), (ORIGIN_A, 1, s2), 2)["detail"]
    assert lines[1:] == [f"LMS-LEAF-REUSED {ORIGIN_A} #1: {detail}"]


def test_reuse_is_found_against_entries_seen_before_a_restart(
    tmp_path: Path,
    logs: _Logs,
    releases: tuple[bytes, bytes],
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The first release is seen and the monitor stops; the second is logged, and the next
    run (a new process: only the state file carries over) reports it against the first."""
    s1, s2 = (_statement(b) for b in releases)
    state = tmp_path / "monitor.sqlite3"
    logs.register(ORIGIN_A, s1)
    assert main(_once(state, logs.url[ORIGIN_A])) == 0
    capsys.readouterr()
    # the same release registered again (another statement, the same LMS signature): one use
    logs.register(ORIGIN_A, _statement(releases[0], f"{SUB}-again"))
    assert main(_once(state, logs.url[ORIGIN_A])) == 0
    assert [e["event"] for e in json.loads(capsys.readouterr().out)["events"]] == ["checkpoint"]
    logs.register(ORIGIN_A, s2)
    assert main(_once(state, logs.url[ORIGIN_A])) == 1
    events = json.loads(capsys.readouterr().out)["events"]
    assert events[1:] == [_reused(logs, (ORIGIN_A, 0, s1), (ORIGIN_A, 2, s2), 3)]
    # the second release registered again: that signature was reported already, once
    logs.register(ORIGIN_A, _statement(releases[1], f"{SUB}-again"))
    assert main(_once(state, logs.url[ORIGIN_A])) == 0
    assert [e["event"] for e in json.loads(capsys.readouterr().out)["events"]] == ["checkpoint"]


def test_reuse_across_two_followed_logs_is_an_alert(
    tmp_path: Path,
    logs: _Logs,
    releases: tuple[bytes, bytes],
    capsys: pytest.CaptureFixture[str],
) -> None:
    s1, s2 = (_statement(b) for b in releases)
    plain = mldsa_vendor()
    other = manifest_statement(plain.sign(plain.build()), KEY, iss=VENDOR, sub=SUB)
    state = tmp_path / "monitor.sqlite3"
    logs.register(ORIGIN_A, s1)
    logs.register(ORIGIN_B, other)
    assert main(_once(state, logs.url[ORIGIN_A], logs.url[ORIGIN_B])) == 0
    capsys.readouterr()
    logs.register(ORIGIN_B, s2)
    assert main(_once(state, logs.url[ORIGIN_A], logs.url[ORIGIN_B])) == 1
    events = json.loads(capsys.readouterr().out)["events"]
    assert events[1:] == [_reused(logs, (ORIGIN_A, 0, s1), (ORIGIN_B, 1, s2), 2)]


def test_one_release_on_two_logs_is_one_use(
    tmp_path: Path,
    logs: _Logs,
    releases: tuple[bytes, bytes],
    capsys: pytest.CaptureFixture[str],
) -> None:
    s1 = _statement(releases[0])
    logs.register(ORIGIN_A, s1)
    logs.register(ORIGIN_B, s1)
    argv = _once(tmp_path / "monitor.sqlite3", logs.url[ORIGIN_A], logs.url[ORIGIN_B])
    assert main(argv) == 0
    events = json.loads(capsys.readouterr().out)["events"]
    assert [(e["event"], e["origin"]) for e in events] == [
        ("checkpoint", ORIGIN_A),
        ("checkpoint", ORIGIN_B),
    ]


def _malformed_leaves(manifest: bytes = b"manifest") -> bytes:
    return create_statement(
        KEY,
        manifest,
        iss=VENDOR,
        sub=SUB,
        headers={LMS_LEAVES_HEADER: []},
        hash_envelope=True,
        hash_alg=HASH_SHA384,
        preimage_content_type=MANIFEST_CONTENT_TYPE,
    )


def test_a_malformed_leaves_header_is_reported_not_skipped(
    tmp_path: Path, logs: _Logs, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = _malformed_leaves()
    logs.register(ORIGIN_A, bad)
    state = tmp_path / "monitor.sqlite3"
    assert main(_once(state, logs.url[ORIGIN_A])) == 1
    doc = json.loads(capsys.readouterr().out)
    detail = (
        "its LMS leaves cannot be read: ironroot-lms-leaves must be an array of one or two LMS"
        " leaf maps"
    )
    assert doc["events"][1] == {
        "event": "lms-leaf-malformed",
        "origin": ORIGIN_A,
        "url": logs.url[ORIGIN_A],
        "size": 1,
        "index": 0,
        "entry_id": hashlib.sha256(bad).hexdigest(),
        "detail": detail,
    }
    assert doc["error"]["code"] == "lms-leaf-malformed"
    assert main(_once(state, logs.url[ORIGIN_A], json_out=False)) == 0  # reported once
    logs.register(ORIGIN_A, _malformed_leaves(b"another manifest"))
    assert main(_once(state, logs.url[ORIGIN_A], json_out=False)) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[-1] == f"LMS-LEAF-MALFORMED {ORIGIN_A} #1: {detail}"


def _untallied(state: Path) -> None:
    """Drop the high-water file's tallies of one-time key uses (as a file written before
    them has none)."""
    water = Path(f"{state}.verified")
    doc = json.loads(water.read_text())
    doc["kept"] = {k: v for k, v in doc["kept"].items() if not k.startswith("\x00")}
    water.write_text(json.dumps(doc))


def test_a_stored_key_use_that_could_not_have_been_written_is_refused(
    tmp_path: Path,
    logs: _Logs,
    releases: tuple[bytes, bytes],
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The index of key uses is read as the state is: a row the monitor could not have
    written (an entry index beyond its log's verified size, a key hash that is no hash) is
    ``StorageError``, not taken for what was seen."""
    state = tmp_path / "monitor.sqlite3"
    logs.register(ORIGIN_A, _statement(releases[0]))
    assert main(_once(state, logs.url[ORIGIN_A])) == 0
    logs.register(ORIGIN_A, _statement(releases[1]))
    db = sqlite3.connect(state)
    with db:
        db.execute("UPDATE key_uses SET idx = 7")
    db.close()
    capsys.readouterr()
    assert main(_once(state, logs.url[ORIGIN_A])) == 1
    error = json.loads(capsys.readouterr().out)["error"]
    assert (error["code"], error["message"]) == (
        "storage",
        f"the monitor database {state} holds other one-time key uses of {ORIGIN_A} than the 1"
        f" kept (its high-water file {state}.verified): the state was rolled back or swapped,"
        " and cannot be trusted; a one-time key used twice would go unreported without a word",
    )
    # with no tally of them (a high-water file without one gains it as it is opened), the
    # row itself is checked
    _untallied(state)
    assert main(_once(state, logs.url[ORIGIN_A])) == 1
    error = json.loads(capsys.readouterr().out)["error"]
    assert error["code"] == "storage"
    assert error["message"] == (
        "the monitor database holds a one-time key use of"
        f" {ORIGIN_A} at entry #7, beyond the 1 entries verified"
    )


def test_the_monitor_layer_runs_no_check_it_was_not_given(
    logs: _Logs, releases: tuple[bytes, bytes]
) -> None:
    """``Monitor`` alone (no ``checks``) reports no reuse: the LMS check is the CLI's to wire
    in (the monitor layer cannot import firmware)."""
    from ironroot.log import HttpLogFetcher

    for bundle in releases:
        logs.register(ORIGIN_A, _statement(bundle))
    store = MonitorStore(":memory:")
    try:
        with HttpLogFetcher(logs.url[ORIGIN_A]) as fetcher:
            events = Monitor(store).check(logs.url[ORIGIN_A], fetcher)
    finally:
        store.close()
    assert [e.kind for e in events] == ["checkpoint"]


class _LmsCheck:
    """The LMS leaf check as a library user writes it (the CLI's is the same)."""

    kind = "lms-leaf"
    label = "LMS leaves"

    @staticmethod
    def uses(entry: bytes) -> tuple[OneTimeKeyUse, ...]:
        return tuple(
            OneTimeKeyUse(leaf.key_hash, leaf.leaf, leaf.signature_hash)
            for leaf in entry_lms_leaves(entry)
        )


def test_a_key_use_row_beyond_its_log_is_a_storage_error(
    tmp_path: Path, logs: _Logs, releases: tuple[bytes, bytes]
) -> None:
    from ironroot.log import HttpLogFetcher

    url = logs.url[ORIGIN_A]
    state = tmp_path / "monitor.sqlite3"
    logs.register(ORIGIN_A, _statement(releases[0]))
    store = MonitorStore(state)
    try:
        with HttpLogFetcher(url) as fetcher:
            Monitor(store, checks=[_LmsCheck()]).check(url, fetcher)
        logs.register(ORIGIN_A, _statement(releases[1]))
        db = sqlite3.connect(state)
        with db:
            db.execute("UPDATE key_uses SET signature = x''")
        db.close()
        _untallied(state)
        with HttpLogFetcher(url) as fetcher, pytest.raises(StorageError) as exc:
            Monitor(store, checks=[_LmsCheck()]).check(url, fetcher)
        assert exc.value.detail == "the monitor database holds a malformed one-time key use"
        assert store.state(ORIGIN_A).size == 1  # type: ignore[union-attr]  # not advanced
    finally:
        store.close()


@pytest.mark.parametrize(
    "change",
    [
        "leaf = -1",
        "leaf = 0.5",
        "leaf = 'zero'",
        "key_hash = x''",
        "kind = ''",
        "idx = -1",
    ],
)
def test_a_key_use_row_no_check_could_have_made_is_a_storage_error(
    tmp_path: Path, logs: _Logs, releases: tuple[bytes, bytes], change: str
) -> None:
    """A row read back from the state is what a check could have made (a leaf 0 to 2⁶³−1, a
    key hash of 1 to 64 bytes, a kind, an entry index ≥ 0), else the state is damaged
    (``StorageError``, as for any malformed row): a negative leaf was taken as it came, and
    no later use of leaf 0 was compared with the one it replaced (the reuse went unseen)."""
    from ironroot.log import HttpLogFetcher

    url = logs.url[ORIGIN_A]
    state = tmp_path / "monitor.sqlite3"
    logs.register(ORIGIN_A, _statement(releases[0]))
    store = MonitorStore(state)
    try:
        with HttpLogFetcher(url) as fetcher:
            Monitor(store, checks=[_LmsCheck()]).check(url, fetcher)
        logs.register(ORIGIN_A, _statement(releases[1]))
        db = sqlite3.connect(state)
        with db:
            db.execute(f"UPDATE key_uses SET {change}")  # noqa: S608
        db.close()
        _untallied(state)  # no tally to compare: the row itself is checked
        with HttpLogFetcher(url) as fetcher, pytest.raises(StorageError) as exc:
            Monitor(store, checks=[_LmsCheck()]).check(url, fetcher)
        assert exc.value.detail == "the monitor database holds a malformed one-time key use"
        assert store.state(ORIGIN_A).size == 1  # type: ignore[union-attr]  # not advanced
    finally:
        store.close()


def test_each_check_has_a_kind_of_its_own() -> None:
    store = MonitorStore(":memory:")
    try:
        with pytest.raises(ConfigError) as exc:
            Monitor(store, checks=[_LmsCheck(), _LmsCheck()])
        assert exc.value.detail == "each check on entries has a kind of its own"
    finally:
        store.close()


def test_one_release_whose_vendor_and_owner_share_a_leaf_is_reuse_within_one_entry(
    tmp_path: Path, logs: _Logs, capsys: pytest.CaptureFixture[str]
) -> None:
    restored = RestoredLms()
    vendor = Vendor(
        ecc=[PrivateKey.generate(Algorithm.ES384)],
        pqc=[restored],
        pqc_type=PqcKeyType.LMS,
        limits=LMS_TEST_LIMITS,
    )
    bundle = vendor.sign(
        vendor.build(), owner_signers=(PrivateKey.generate(Algorithm.ES384), restored)
    )
    statement = _statement(bundle)
    logs.register(ORIGIN_A, statement)
    assert main(_once(tmp_path / "monitor.sqlite3", logs.url[ORIGIN_A])) == 1
    (_, event) = json.loads(capsys.readouterr().out)["events"]
    vendor_leaf, owner_leaf = logged_lms_leaves(statement)
    assert (event["event"], event["index"], event["first_index"]) == ("lms-leaf-reused", 0, 0)
    assert (event["origin"], event["first_origin"], event["leaf"]) == (ORIGIN_A, ORIGIN_A, 0)
    assert event["first_signature_hash"] == vendor_leaf.signature_hash.hex()
    assert event["signature_hash"] == owner_leaf.signature_hash.hex()


def test_a_key_use_deleted_from_a_current_state_is_refused(
    tmp_path: Path,
    logs: _Logs,
    releases: tuple[bytes, bytes],
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The high-water file tallies the key uses of each log as it does its fork proofs: a
    row deleted from a state that is otherwise current (the first use of a leaf, so that its
    reuse goes unseen) is ``StorageError``, not a round that misses the reuse."""
    state = tmp_path / "monitor.sqlite3"
    logs.register(ORIGIN_A, _statement(releases[0]))
    assert main(_once(state, logs.url[ORIGIN_A])) == 0
    db = sqlite3.connect(state)
    with db:
        db.execute("DELETE FROM key_uses")
    db.close()
    logs.register(ORIGIN_A, _statement(releases[1]))
    capsys.readouterr()
    assert main(_once(state, logs.url[ORIGIN_A])) == 1
    error = json.loads(capsys.readouterr().out)["error"]
    assert (error["code"], error["message"]) == (
        "storage",
        f"the monitor database {state} holds 0 one-time key uses of {ORIGIN_A}, but 1 were"
        f" kept (its high-water file {state}.verified): the state was rolled back or swapped,"
        " and cannot be trusted; a one-time key used twice would go unreported without a word",
    )
    store = MonitorStore(state)
    try:
        with pytest.raises(StorageError) as exc:
            store.states()  # monitor status too
    finally:
        store.close()
    assert exc.value.detail == error["message"]
