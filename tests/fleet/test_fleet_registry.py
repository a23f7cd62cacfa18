"""The fleet's directory and registry: manufacture, status changes with events, lazy nodes."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.fleet.fleet_world import make_fleet, node_class
from tests.platform.node_world import NOW, World, make_world

from ironroot.crypto import Algorithm, PrivateKey
from ironroot.errors import ConfigError, Conflict, NotFound, StorageError
from ironroot.fleet import Fleet, FleetCA


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with make_world(tmp_path_factory.mktemp("fleet-world")) as w:
        yield w


def test_manufactured_nodes_are_pending_booted_platforms(world: World, tmp_path: Path) -> None:
    fleet, _ = make_fleet(world, tmp_path / "fleet", 3)
    assert fleet.node_ids() == ["node-0001", "node-0002", "node-0003"]
    assert fleet.status_counts() == {"pending": 3, "admitted": 0, "quarantined": 0}
    again = Fleet.open(tmp_path / "fleet")
    platform = again.node("node-0002")
    assert platform.state().boots == 1
    assert [e.kind for e in again.events(node="node-0002")] == ["manufactured"]


def test_a_status_change_is_recorded_with_its_reason(world: World, tmp_path: Path) -> None:
    fleet, _ = make_fleet(world, tmp_path / "fleet", 1)
    record = fleet.set_status(
        "node-0001",
        "quarantined",
        "debug unlocked",
        now=NOW,
        evidence={"claim": "debug"},
        ear_id="ear-1",
    )
    assert record.status == "quarantined"
    assert record.ear_id == "ear-1"
    event = fleet.events(node="node-0001")[-1]
    assert event.kind == "quarantined"
    assert event.detail == {"reason": "debug unlocked", "claim": "debug"}


def test_registry_refusals(world: World, tmp_path: Path) -> None:
    fleet, _ = make_fleet(world, tmp_path / "fleet", 1)
    with pytest.raises(NotFound):
        fleet.node("node-0009")
    with pytest.raises(ConfigError):
        fleet.set_status("node-0001", "trusted", "no such status", now=NOW)
    with pytest.raises(Conflict):
        Fleet.create(tmp_path / "fleet", node_class=node_class(world))
    with pytest.raises(NotFound):
        Fleet.open(tmp_path / "nowhere")


def test_an_unknown_node_named_at_length_is_not_quoted_whole(world: World, tmp_path: Path) -> None:
    # The name comes from a request (a control-plane path, an admission challenge): an
    # error that quotes it whole echoes up to a request's size back, and into the logs.
    fleet, _ = make_fleet(world, tmp_path / "fleet", 1)
    name = "n" * 70_000
    for ask in (fleet.node, fleet.record_of, lambda n: fleet.note_attested(n, now=NOW)):
        with pytest.raises(NotFound) as caught:
            ask(name)
        assert caught.value.detail == f"no node {name[:64]!r}… in the fleet"
    with pytest.raises(NotFound) as caught:
        fleet.node("node-0009")
    assert caught.value.detail == "no node 'node-0009' in the fleet"


@pytest.mark.parametrize(
    "name",
    ["-gpu", "_gpu", "x" * 65, "Größe", "node\u0663"],
    ids=["dash", "underscore", "long", "umlaut", "arabic-digit"],
)
def test_a_class_name_no_credential_can_carry_is_refused_when_the_class_is_made(
    world: World, tmp_path: Path, name: str
) -> None:
    """A class name is what every credential of its nodes names (``O=`` and the fleet
    credential extension): one the credential profile cannot carry is refused with the class,
    not found out at each node's admission (where the fleet CA refuses to issue, after the
    appraisal, and the node is never admitted)."""
    with pytest.raises(ConfigError, match="1-64 of A-Z a-z 0-9 - _"):
        node_class(world, name=name)
    fleet_file = tmp_path / "fleet" / "fleet.json"
    Fleet.create(tmp_path / "fleet", node_class=node_class(world))
    fleet_file.write_text(json.dumps({"format": 1, "classes": [name]}), encoding="utf-8")
    with pytest.raises(StorageError, match="not a class name"):
        Fleet.open(tmp_path / "fleet").classes()


def test_every_class_name_the_fleet_takes_is_one_its_credentials_carry(
    world: World, tmp_path: Path
) -> None:
    ca = FleetCA.create(tmp_path / "ca", now=NOW)
    spki = PrivateKey.generate(Algorithm.ES384).public_key.to_der()
    for name in ("node-7", "a" * 64, "GPU_v2", "7-x"):
        klass = node_class(world, name=name)
        credential = ca.issue(
            spki,
            node="node-0001",
            node_class=klass.name,
            plane="control",
            ear_id="urn:ironroot:ear:sha256:" + "0" * 64,
            now=NOW,
        )
        assert credential.node_class == name


# --- events anyone may cause again and again: folded, and a few kept ----------------------


def _refusal(fleet: Fleet, code: str, ear_id: str, at: dt.datetime, **bounds: float) -> None:
    fleet.record_repeated(
        "node-0001",
        "admission-refused",
        {"ear_id": ear_id, "error": code},
        same="error",
        now=at,
        window=bounds.get("window", 3600),
        keep=int(bounds.get("keep", 100)),
    )


def _rows(fleet: Fleet) -> int:
    with contextlib.closing(sqlite3.connect(fleet.database)) as db:
        return int(db.execute("SELECT COUNT(*) FROM events").fetchone()[0])


def test_thousands_of_identical_refusals_are_one_event_with_their_count(tmp_path: Path) -> None:
    fleet = Fleet(tmp_path)
    with fleet.transaction():  # one commit, to keep the test fast; each is one in admission
        for i in range(3000):
            _refusal(fleet, "key-binding-mismatch", f"ear-{i}", NOW + dt.timedelta(seconds=i))
    assert _rows(fleet) == 1
    (event,) = fleet.events(node="node-0001")
    assert event.kind == "admission-refused"
    assert event.detail == {
        "ear_id": "ear-2999",  # the latest refusal's detail
        "error": "key-binding-mismatch",
        "count": 3000,
        "first_at": "2026-06-01T12:00:00Z",
    }
    assert event.at == "2026-06-01T12:49:59Z"  # when it was last seen
    # an hour after the run began, a new one starts
    _refusal(fleet, "key-binding-mismatch", "ear-late", NOW + dt.timedelta(seconds=3600))
    latest = fleet.events(node="node-0001")
    assert [e.detail["count"] for e in latest] == [3000, 1]
    assert latest[-1].detail["first_at"] == latest[-1].at


def test_refusals_for_other_reasons_stay_apart_and_a_node_keeps_the_latest(
    tmp_path: Path,
) -> None:
    fleet = Fleet(tmp_path)
    with fleet.transaction():
        for i in range(2000):  # two reasons, interleaved: one event each
            code = ("nonce-mismatch", "bad-signature")[i % 2]
            _refusal(fleet, code, f"ear-{i}", NOW + dt.timedelta(seconds=i))
    events = fleet.events(node="node-0001")
    assert [(e.detail["error"], e.detail["count"], e.detail["ear_id"]) for e in events] == [
        ("nonce-mismatch", 1000, "ear-1998"),
        ("bad-signature", 1000, "ear-1999"),
    ]
    fleet.record("node-0001", "quarantined", {"reason": "kept"}, now=NOW)
    with fleet.transaction():
        for i in range(1000):  # a new run every time (a 1 s window): only the latest 5 kept
            _refusal(
                fleet,
                "bad-signature",
                f"ear-{i}",
                NOW + dt.timedelta(hours=2, seconds=i),
                window=1,
                keep=5,
            )
    refused = fleet.events(node="node-0001", kind="admission-refused")
    assert [e.detail["ear_id"] for e in refused] == [f"ear-{i}" for i in range(995, 1000)]
    assert [e.kind for e in fleet.events(kind="quarantined")] == ["quarantined"]  # others stay
    assert _rows(fleet) == 6


@pytest.mark.parametrize(("window", "keep"), [(0, 100), (-1, 100), (3600, 0), (3600, True)])
def test_repeated_events_need_a_window_and_something_kept(
    tmp_path: Path, window: float, keep: int
) -> None:
    fleet = Fleet(tmp_path)
    with pytest.raises(ConfigError) as caught:
        fleet.record_repeated(
            "node-0001", "admission-refused", {}, same="error", now=NOW, window=window, keep=keep
        )
    assert caught.value.detail == (
        "repeated events fold within a positive window, keeping 1 or more"
    )
    assert fleet.events() == []
