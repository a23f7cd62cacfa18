"""Hostile files in a fleet's directory, as the scanner and the revocation watch read them:
``scan-pending.json`` and ``admission/watched.json`` damaged past what ``json`` can nest, and
CRL files in ``admission/crls/`` that are no regular file (a named pipe, a link to a device
that never ends). Each is read as damaged or unreadable, never raised out of a round or waited
on for ever."""

from __future__ import annotations

import datetime as dt
import json
import os
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from tests.fleet.admission_world import admission_world
from tests.fleet.fleet_world import make_fleet
from tests.platform.node_world import NOW, World, make_world

from hypothesis_budget import examples
from ironroot.errors import StorageError
from ironroot.fleet import Fleet, RevocationWatch, Scanner, attest_node
from ironroot.fleet._revocation import _HEAD, _head

_DEEP = b"[" * 200_000  # deeper than json's recursion allows: RecursionError, not ValueError


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with make_world(tmp_path_factory.mktemp("hostile-files-world")) as w:
        yield w


def _attest(fleet: Fleet) -> object:
    lock = threading.Lock()

    def attest(node_id: str, now: dt.datetime) -> str:
        stamp = now.isoformat().replace("+00:00", "Z")
        with lock:
            fleet.set_status(node_id, "admitted", "scan", now=now, last_attested=stamp)
        return "admitted"

    return attest


def test_a_pending_file_nested_past_what_json_reads_triggers_every_node(
    world: World, tmp_path: Path
) -> None:
    """Old behaviour: ``scan-pending.json`` nested deeper than ``json`` recurses raised
    ``RecursionError`` out of every round before any node was attested (not the damaged
    file's "every node is triggered"): no node was re-attested again, due or triggered."""
    fleet, _ = make_fleet(world, tmp_path / "fleet", 2)
    scanner = Scanner(fleet, _attest(fleet), period=86400)  # type: ignore[arg-type]
    scanner.scan(NOW)
    (fleet.directory / "scan-pending.json").write_bytes(_DEEP)
    later = NOW + dt.timedelta(seconds=10)
    assert scanner.scan(later).reasons == dict.fromkeys(fleet.node_ids(), "triggered")
    assert scanner.scan(later + dt.timedelta(seconds=10)).reasons == {}  # written again whole


@pytest.mark.parametrize("seq", [1 << 63, 10**30])
def test_a_pending_file_whose_event_count_no_sqlite_integer_holds_triggers_every_node(
    world: World, tmp_path: Path, seq: int
) -> None:
    """Old behaviour: a ``seq`` past SQLite's integers (2**63 and up) in
    ``scan-pending.json`` raised ``OverflowError`` out of every round as the rollouts after
    it were looked up: no node was re-attested again. It is a damaged file: every node."""
    fleet, _ = make_fleet(world, tmp_path / "fleet", 2)
    scanner = Scanner(fleet, _attest(fleet), period=86400)  # type: ignore[arg-type]
    scanner.scan(NOW)
    (fleet.directory / "scan-pending.json").write_text(f'{{"nodes": {{}}, "seq": {seq}}}')
    later = NOW + dt.timedelta(seconds=10)
    assert scanner.scan(later).reasons == dict.fromkeys(fleet.node_ids(), "triggered")
    assert scanner.scan(later + dt.timedelta(seconds=10)).reasons == {}


_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(1 << 70), 1 << 70)
    | st.floats()
    | st.text(max_size=12)
    | st.sampled_from(["node-0001", "node-0002", "admission/crls/vendor-ca.crl"]),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(
            st.text(max_size=8) | st.sampled_from(["node-0001", "seen"]), inner, max_size=4
        )
    ),
    max_leaves=20,
)
_DOCS = _JSON | st.fixed_dictionaries(
    {"nodes": _JSON},
    optional={
        "seq": _JSON | st.integers(-5, 1 << 80) | st.sampled_from([(1 << 63) - 1, 1 << 63]),
        "format": _JSON,
        "seen": _JSON,
    },
)


def test_any_json_in_the_pending_and_watch_files_is_read_or_taken_as_damaged(
    world: World, tmp_path: Path
) -> None:
    """Whatever JSON ``scan-pending.json`` and ``admission/watched.json`` hold, a round runs
    (each node it names is attested at most once, none outside the fleet) and the watch
    polls: a file that is not one they wrote is damaged, never an exception out of a round
    (a ``seq`` past SQLite's integers was ``OverflowError`` out of every round)."""
    fleet, _ = make_fleet(world, tmp_path / "fleet", 2)
    scanner = Scanner(fleet, _attest(fleet), period=86400)  # type: ignore[arg-type]
    scanner.scan(NOW)
    (fleet.directory / "admission").mkdir(exist_ok=True)
    rounds = iter(range(1, 1_000_000))

    @settings(
        max_examples=examples(40),
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )
    @given(doc=_DOCS)
    @example(doc={"nodes": {}, "seq": 1 << 63})  # found so: OverflowError out of every round
    def one(doc: object) -> None:
        text = json.dumps(doc)
        (fleet.directory / "scan-pending.json").write_text(text)
        (fleet.directory / "admission" / "watched.json").write_text(text)
        report = scanner.scan(NOW + dt.timedelta(seconds=next(rounds)))
        assert set(report.reasons) <= set(fleet.node_ids())
        RevocationWatch(fleet).poll()

    one()


def test_a_pending_file_ahead_of_the_fleets_events_still_sees_new_rollouts(
    world: World, tmp_path: Path
) -> None:
    """Old behaviour: ``scan-pending.json`` names the last ``rollout-update`` event it read
    (``seq``); one ahead of the fleet's events (``fleet.db`` restored from a backup and the
    file not, or the file edited) made every rollout recorded after numbered below it, never
    read: the nodes it updated kept their old firmware's status until their period. Such a
    file is not one written against this ``fleet.db``: damaged, every node triggered."""
    fleet, _ = make_fleet(world, tmp_path / "fleet", 2)
    scanner = Scanner(fleet, _attest(fleet), period=86400)  # type: ignore[arg-type]
    scanner.scan(NOW)
    (last,) = fleet.events(latest=True, limit=1)
    (fleet.directory / "scan-pending.json").write_text(f'{{"nodes": {{}}, "seq": {last.seq + 50}}}')
    fleet.record("node-0001", "rollout-update", {"component": "host", "to": "2.0"}, now=NOW)
    later = NOW + dt.timedelta(seconds=10)
    assert scanner.scan(later).reasons == dict.fromkeys(fleet.node_ids(), "triggered")
    assert scanner.scan(later + dt.timedelta(seconds=10)).reasons == {}


def test_a_watch_file_nested_past_what_json_reads_triggers_every_class(
    world: World, tmp_path: Path
) -> None:
    """Old behaviour: ``admission/watched.json`` nested too deep raised ``RecursionError`` as
    the watch started (``fleet serve --scan`` died with a traceback) instead of being read as
    damaged: nothing seen, every CRL there reported once."""
    fleet, _ = make_fleet(world, tmp_path / "fleet", 1)
    crls = fleet.directory / "admission" / "crls"
    crls.mkdir(parents=True, exist_ok=True)
    (crls / "vendor-ca.crl").write_bytes(b"a CRL")
    RevocationWatch(fleet).poll()
    (fleet.directory / "admission" / "watched.json").write_bytes(b'{"format": 1, "seen": ' + _DEEP)
    watch = RevocationWatch(fleet)
    assert sorted({e.crl for e in watch.poll()}) == ["admission/crls/vendor-ca.crl"]
    assert watch.poll() == []


@pytest.mark.parametrize("kind", ["named pipe", "link to /dev/zero"])
def test_a_crl_file_that_is_no_regular_file_is_never_waited_on(
    world: World, tmp_path: Path, kind: str
) -> None:
    """Old behaviour: a CRL is known by the SHA-256 of its bytes, read whole and unbounded
    with a blocking ``open``: a named pipe in ``admission/crls/`` (nobody writing) kept the
    watch, and every admission of the fleet, waiting in ``open`` for ever, and a link to
    ``/dev/zero`` read on for ever. Such a file is read as the CRL check reads it (without
    blocking, within its limit): it holds no CRL, and its name is reported once."""
    fleet, _ = make_fleet(world, tmp_path / "fleet", 1)
    crls = fleet.directory / "admission" / "crls"
    crls.mkdir(parents=True, exist_ok=True)
    watch = RevocationWatch(fleet)
    if kind == "named pipe":
        os.mkfifo(crls / "pipe.crl")
    else:
        (crls / "pipe.crl").symlink_to("/dev/zero")
    assert sorted({e.crl for e in watch.poll()}) == ["admission/crls/pipe.crl"]
    assert watch.poll() == []


def test_a_named_pipe_held_open_among_the_crls_does_not_hold_admission(
    world: World, tmp_path: Path
) -> None:
    """Old behaviour: the CRL check read each file of ``admission/crls/`` with
    ``read_limited``, which waits on a named pipe whose writer holds it open and never writes:
    every admission of the fleet waited with it. Only regular files are read as CRLs; the
    pipe is left out with a warning, as an unreadable file."""
    fleet, authority = admission_world(world).fleet(tmp_path / "fleet", 1)
    crls = fleet.directory / "admission" / "crls"
    crls.mkdir(parents=True, exist_ok=True)
    os.mkfifo(crls / "pipe.crl")
    writer = os.open(crls / "pipe.crl", os.O_RDWR)  # a writer that never writes
    try:
        assert attest_node(fleet, "node-0001", now=NOW, authority=authority).status == "admitted"
    finally:
        os.close(writer)


def test_state_files_that_are_named_pipes_held_open_are_read_as_unreadable(
    world: World, tmp_path: Path
) -> None:
    """Old behaviour: ``scan-pending.json`` and ``admission/watched.json`` were read with
    ``read_limited``, which waits on a named pipe whose writer holds it open: the scanner's
    rounds (and the watch's start) waited with it. Each is a file that cannot be read now:
    every node triggered, every CRL reported once, and the file written again."""
    fleet, _ = make_fleet(world, tmp_path / "fleet", 2)
    crls = fleet.directory / "admission" / "crls"
    crls.mkdir(parents=True, exist_ok=True)
    (crls / "vendor-ca.crl").write_bytes(b"a CRL")
    RevocationWatch(fleet).poll()
    scanner = Scanner(fleet, _attest(fleet), period=86400)  # type: ignore[arg-type]
    scanner.scan(NOW)
    pipes = [fleet.directory / "scan-pending.json", fleet.directory / "admission" / "watched.json"]
    writers = []
    for pipe in pipes:
        pipe.unlink()
        os.mkfifo(pipe)
        writers.append(os.open(pipe, os.O_RDWR))  # a writer that never writes
    try:
        later = NOW + dt.timedelta(seconds=10)
        assert scanner.scan(later).reasons == dict.fromkeys(fleet.node_ids(), "triggered")
        watch = RevocationWatch(fleet)
        assert sorted({e.crl for e in watch.poll()}) == ["admission/crls/vendor-ca.crl"]
    finally:
        for fd in writers:
            os.close(fd)
    assert all(pipe.is_file() for pipe in pipes)  # written again, whole


def test_an_event_whose_detail_is_nested_past_what_json_reads_is_damaged(
    world: World, tmp_path: Path
) -> None:
    """Old behaviour: an event row of ``fleet.db`` whose detail nests deeper than ``json``
    recurses raised ``RecursionError`` out of ``events()`` (the scanner reads the
    ``rollout-update`` events at every round) and out of ``record_repeated`` (each
    ``scan-failed``), not the ``StorageError`` of a damaged row, or a row not counted."""
    fleet, _ = make_fleet(world, tmp_path / "fleet", 1)
    fleet.record("node-0001", "rollout-update", {"to": "2.0"}, now=NOW)
    failed = {"code": "x"}
    fleet.record_repeated(
        "node-0001", "scan-failed", failed, same="code", now=NOW, window=60, keep=2
    )
    (rollout,) = fleet.events(kind="rollout-update")
    db = sqlite3.connect(fleet.directory / "fleet.db")
    with db:
        db.execute("UPDATE events SET detail = ? WHERE kind = 'rollout-update'", (_DEEP.decode(),))
        db.execute("UPDATE events SET detail = ? WHERE kind = 'scan-failed'", (_DEEP.decode(),))
    db.close()
    with pytest.raises(StorageError) as exc:
        fleet.events(kind="rollout-update")
    assert exc.value.detail == f"the fleet registry: event #{rollout.seq} is damaged"
    fleet.record_repeated(
        "node-0001", "scan-failed", failed, same="code", now=NOW, window=60, keep=2
    )
    db = sqlite3.connect(fleet.directory / "fleet.db")
    with db:
        (count,) = db.execute("SELECT count(*) FROM events WHERE kind = 'scan-failed'").fetchone()
    db.close()
    assert count == 2  # the damaged one is no earlier failure to count: a new event


def test_a_class_file_nested_past_what_json_reads_is_malformed(
    world: World, tmp_path: Path
) -> None:
    """Old behaviour: ``class/<name>/class.json`` nested too deep raised ``RecursionError``
    from ``node_class`` (every admission, scan round and trigger of the fleet reads it)."""
    fleet, _ = make_fleet(world, tmp_path / "fleet", 1)
    (name,) = fleet.classes()
    folder = fleet.directory / "class" / name
    (folder / "class.json").write_bytes(_DEEP)
    with pytest.raises(StorageError) as exc:
        Fleet(fleet.directory).node_class(name)
    assert exc.value.detail.startswith(f"{folder}/class.json is malformed: ")


@pytest.mark.parametrize("writer", [False, True], ids=["no writer", "a writer that never writes"])
def test_a_crl_file_swapped_for_a_named_pipe_before_its_head_is_read_is_not_waited_on(
    tmp_path: Path, writer: bool
) -> None:
    """Old behaviour: a CRL file over the size limit is read again for its first bytes (its
    issuer) with a blocking ``open``: the file swapped for a named pipe between the size check
    and that read kept the round waiting in ``open`` (no writer) or in ``read`` (a writer that
    never writes). The head is read without blocking, from a regular file only: a pipe has
    none (``b""``, the CRL's issuer unknown)."""
    pipe = tmp_path / "big.crl"
    os.mkfifo(pipe)
    held = os.open(pipe, os.O_RDWR) if writer else None
    try:
        assert _head(pipe) == b""
    finally:
        if held is not None:
            os.close(held)


def test_the_head_of_a_crl_file_over_the_limit_is_its_first_bytes(tmp_path: Path) -> None:
    """The head of a regular CRL file is its first bytes, at most the head's size."""
    path = tmp_path / "big.crl"
    path.write_bytes(b"\x30\x82" + b"\x00" * (_HEAD * 2))
    assert _head(path) == (b"\x30\x82" + b"\x00" * (_HEAD * 2))[:_HEAD]
    assert _head(tmp_path / "missing.crl") == b""
    assert _head(tmp_path) == b""  # a directory holds no CRL
