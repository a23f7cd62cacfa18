"""Request bodies on the fleet's admission service and control plane, over real TLS: a body of
another media type than its endpoint takes is a 415 problem that changes nothing (a JSON body
without a type is read as JSON); ``POST /v1/rollouts`` is checked (its members and types, the
class, the nodes) before the registry records it, so a refused one is a problem with its exact
status and code and leaves no ``rollout-requested`` event and no update behind, and an accepted
one is recorded, then run. The fleet has a second class, so a node of another class can be
named."""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from tests.fleet.desired_world import ALICE, BOB, make_ops
from tests.fleet.fleet_site import Site, problem, running_site
from tests.fleet.fleet_world import add_class, node_class
from tests.platform.node_world import NOW, World, make_world

from ironroot._fileio import DirectoryLock
from ironroot.cose import Problem
from ironroot.errors import StorageError
from ironroot.fleet import (
    AdmissionRequest,
    DesiredState,
    DesiredStore,
    desired_rollout,
    make_csr,
)

_OTHER = "node-0004"  # the one node of class node-8


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with make_world(tmp_path_factory.mktemp("rollouts-world")) as w:
        yield w


@pytest.fixture(scope="module")
def site(world: World, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """Three admitted nodes of class node-7 with host 2.0 desired, and one of class node-8."""
    with running_site(world, tmp_path_factory.mktemp("rollouts")) as made:
        other = node_class(world, name="node-8")
        assert add_class(made.fleet, other, 1, vendor_ca=made.world.vendor_ca) == [_OTHER]
        with make_ops(tmp_path_factory.mktemp("rollouts-ops")) as ops:
            store = DesiredStore(made.fleet)
            store.init(ops.governance())
            bundles = {"host": world.release("host", "2.0").bundle}
            state = DesiredState.build(
                made.fleet.node_class("node-7"), 1, bundles=bundles, fleet=made.fleet.identity()
            )
            store.publish("node-7", ops.sign(state, ALICE, BOB), now=NOW, registrar=ops.log)
        yield made


def _hosts(site: Site) -> list[str]:
    versions = []
    for node in site.fleet.node_ids():
        image = site.fleet.node(node).state().component("host").image
        assert image is not None
        versions.append(image.version)
    return versions


_MALFORMED = (
    'a rollout is {"class": name, "wave_size": int, "nodes": [id], "dry_run": bool, '
    '"allow_recovery_removal": [component]}'
)

# body -> (status, code, detail); each would otherwise be a dry run of class node-7
_REFUSED: dict[str, tuple[dict[str, Any], tuple[int, str, str]]] = {
    "unknown member": (
        {"firmware": "mine"},
        (400, "malformed", "unknown rollout settings: firmware"),
    ),
    "wave size as text": ({"wave_size": "2"}, (400, "malformed", _MALFORMED)),
    "wave size as a boolean": ({"wave_size": True}, (400, "malformed", _MALFORMED)),
    "nodes as text": ({"nodes": "node-0001"}, (400, "malformed", _MALFORMED)),
    "a node as a number": ({"nodes": ["node-0001", 2]}, (400, "malformed", _MALFORMED)),
    "dry run as text": ({"dry_run": "yes"}, (400, "malformed", _MALFORMED)),
    "class as a list": ({"class": ["node-7"]}, (400, "malformed", _MALFORMED)),
    "allow_recovery_removal as text": (
        {"allow_recovery_removal": "host"},
        (400, "malformed", _MALFORMED),
    ),
    "allow_recovery_removal as a list of numbers": (
        {"allow_recovery_removal": [1]},
        (400, "malformed", _MALFORMED),
    ),
    "wave size 0": ({"wave_size": 0}, (400, "config", "the wave size is 1 or more")),
    # an empty list is a caller's mistake (a query that found nothing), not a rollout of
    # nothing that reports success
    "no node": (
        {"nodes": []},
        (400, "config", "give at least one node (no list: every node of the class)"),
    ),
    "the caller twice": (
        {"nodes": ["node-0001", "node-0001"]},
        (400, "config", "a node is given once: node-0001 given more than once"),
    ),
}

# A node's credential rolls out that node only (least privilege: a node admitted by
# attestation starts no rollout of other nodes, of its class or of the fleet) and never
# accepts the loss of a recovery image (the operator's, on the command line). Each is refused
# before anything is checked against the fleet: an unknown class or node is 403 as a known one.
_NOT_OWN = (
    "a node's credential rolls out that node only: node-0001 (class node-7) may not roll out "
)
_NOT_PERMITTED: dict[str, tuple[dict[str, Any], tuple[int, str, str]]] = {
    "another node": (
        {"nodes": ["node-0002"]},
        (403, "rollout-not-own-node", _NOT_OWN + "node-0002"),
    ),
    "itself and others": (
        {"nodes": ["node-0002", "node-0001", "node-0003"]},
        (403, "rollout-not-own-node", _NOT_OWN + "node-0002, node-0003"),
    ),
    # a request's names are echoed in the refusal, the first five of them: not 64 KiB of them
    "many others": (
        {"nodes": [f"node-{n:04}" for n in range(2, 5000)]},
        (
            403,
            "rollout-not-own-node",
            _NOT_OWN + "node-0002, node-0003, node-0004, node-0005, node-0006 and 4993 more",
        ),
    ),
    "a node of another class": (
        {"nodes": [_OTHER]},
        (403, "rollout-not-own-node", _NOT_OWN + _OTHER),
    ),
    "an unknown node": (
        {"nodes": ["node-0001", "node-9999"]},
        (403, "rollout-not-own-node", _NOT_OWN + "node-9999"),
    ),
    # null is "every node of the class" to the trigger (the CLI's default): not over the plane
    "nodes null": (
        {"nodes": None},
        (403, "rollout-not-own-node", _NOT_OWN + "every node of class node-7"),
    ),
    "another class": (
        {"class": "node-8"},
        (403, "rollout-not-own-node", _NOT_OWN + "class node-8"),
    ),
    "an unknown class": (
        {"class": "node-9"},
        (403, "rollout-not-own-node", _NOT_OWN + "class node-9"),
    ),
    # an empty name is no class, not the fleet's first one nor the caller's
    "an empty class": ({"class": ""}, (403, "rollout-not-own-node", _NOT_OWN + "class ")),
    "its own node, with another class": (
        {"class": "node-8", "nodes": ["node-0001"]},
        (403, "rollout-not-own-node", _NOT_OWN + "class node-8"),
    ),
    "allow_recovery_removal": (
        {"allow_recovery_removal": ["host"]},
        (
            403,
            "recovery-removal-not-permitted",
            "allow_recovery_removal is the operator's (ironroot fleet rollout "
            "--allow-recovery-removal), never a node's request",
        ),
    ),
    "allow_recovery_removal of no component": (
        {"allow_recovery_removal": ["host", "bios"]},
        (
            403,
            "recovery-removal-not-permitted",
            "allow_recovery_removal is the operator's (ironroot fleet rollout "
            "--allow-recovery-removal), never a node's request",
        ),
    ),
}
_REFUSED.update(_NOT_PERMITTED)


@pytest.mark.parametrize("body", [b for b, _ in _REFUSED.values()], ids=list(_REFUSED))
def test_a_refused_rollout_request_leaves_no_event(site: Site, body: dict[str, Any]) -> None:
    expected = next(answer for b, answer in _REFUSED.values() if b is body)
    before = site.fleet.events(limit=100_000)
    with site.client("node-0001", "control") as control:
        response = control.post(
            f"{site.servers.control_url}/v1/rollouts",
            json={"dry_run": True, **body},
            headers={"Accept": "application/json"},
        )
    answer = response.json()
    assert (response.status_code, answer["code"], answer["detail"]) == expected
    assert site.fleet.events(limit=100_000) == before
    assert _hosts(site) == ["1.0"] * 4


def test_a_rollout_of_other_nodes_is_refused_before_anything_runs(site: Site) -> None:
    """Not a dry run: a node asking to update its peers now (an unplanned reboot of each) is
    refused whole, nothing recorded or installed, not even on the caller."""
    before = site.fleet.events(limit=100_000)
    with site.client("node-0001", "control") as control:
        for body in ({"nodes": ["node-0002", "node-0003"]}, {"class": "node-8"}, {"nodes": None}):
            response = control.post(f"{site.servers.control_url}/v1/rollouts", json=body)
            assert problem(response) == (403, "rollout-not-own-node", "Role Not Permitted")
        recovery = control.post(
            f"{site.servers.control_url}/v1/rollouts",
            json={"nodes": ["node-0001"], "allow_recovery_removal": ["host"]},
        )
    assert problem(recovery) == (403, "recovery-removal-not-permitted", "Role Not Permitted")
    assert site.fleet.events(limit=100_000) == before
    assert _hosts(site) == ["1.0"] * 4


def test_a_node_asking_to_act_for_others_is_logged_as_a_warning(
    site: Site, caplog: pytest.LogCaptureFixture
) -> None:
    """A refused rollout leaves no event, but an attested node asking to roll out its peers, or
    to drop a recovery image, is what a compromised node does: the plane warns, naming the
    node (from its credential) and the refusal's code, never what the request named."""
    url = f"{site.servers.control_url}/v1/rollouts"
    with (
        caplog.at_level(logging.WARNING, logger="ironroot.fleet"),
        site.client("node-0002", "control") as control,
    ):
        control.post(url, json={"dry_run": True, "nodes": ["node-0003\nforged line"]})
        control.post(url, json={"dry_run": True, "allow_recovery_removal": ["host"]})
        control.post(url, json={"dry_run": True, "wave_size": 0})  # a mistake: no warning
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
        (
            "WARNING",
            "node-0002 asked the control plane for a rollout it may not start "
            "(rollout-not-own-node)",
        ),
        (
            "WARNING",
            "node-0002 asked the control plane for a rollout it may not start "
            "(recovery-removal-not-permitted)",
        ),
    ]


def test_an_accepted_rollout_request_is_the_callers_own_recorded_then_run(site: Site) -> None:
    """Without ``class`` and ``nodes`` a request rolls out the caller's node (of its class);
    naming them is accepted when they are the caller's own. The event records what ran."""
    url = f"{site.servers.control_url}/v1/rollouts"
    with site.client("node-0003", "control") as control:
        response = control.post(url, json={"dry_run": True, "wave_size": 2})
        assert response.status_code == 200, response.text
        report = response.json()
        assert [(n["node"], n["outcome"], n["wave"]) for n in report["nodes"]] == [
            ("node-0003", "planned", 1)
        ]
        last = site.fleet.events()[-1]
        scoped = {"dry_run": True, "wave_size": 2, "class": "node-7", "nodes": ["node-0003"]}
        assert (last.node, last.kind, last.detail) == ("node-0003", "rollout-requested", scoped)
        named = control.post(url, json={"dry_run": True, "class": "node-7", "nodes": ["node-0003"]})
    assert [n["node"] for n in named.json()["nodes"]] == ["node-0003"]


def test_a_node_asking_for_rollouts_too_often_is_refused_until_its_bucket_refills(
    site: Site,
) -> None:
    """Every rollout, a dry run too, holds its class's rollout lock while it plans, and the
    operator's ``fleet rollout`` of the class meanwhile is refused ``in-use``: a node asking
    for its own rollout in a loop kept a third of the operator's attempts out. A node may ask
    five times at once, then once a minute; a request over that is 503 ``rollout-rate`` with
    ``Retry-After``, recorded nowhere; a refused request (400, 403) costs nothing."""
    url = f"{site.servers.control_url}/v1/rollouts"
    try:
        with site.client("node-0002", "control") as control:
            for _ in range(3):  # refused by the checks: free
                refused = control.post(url, json={"dry_run": True, "nodes": ["node-0001"]})
                assert problem(refused)[:2] == (403, "rollout-not-own-node")
            for _ in range(5):
                assert control.post(url, json={"dry_run": True}).status_code == 200
            events = site.fleet.events(limit=100_000)
            over = control.post(url, json={"dry_run": True}, headers={"Accept": "application/json"})
            assert (over.status_code, over.json()["code"], over.json()["detail"]) == (
                503,
                "rollout-rate",
                "node-0002 asks for rollouts more often than once a minute (5 at once): retry "
                "in 60 s",
            )
            assert over.headers["Retry-After"] == "60"
            assert site.fleet.events(limit=100_000) == events
            site.clock.now = NOW + dt.timedelta(seconds=59)
            assert problem(control.post(url, json={"dry_run": True}))[:2] == (503, "rollout-rate")
            site.clock.now = NOW + dt.timedelta(seconds=60)
            assert control.post(url, json={"dry_run": True}).status_code == 200
        with site.client("node-0003", "control") as other:  # each node its own
            assert other.post(url, json={"dry_run": True}).status_code == 200
    finally:
        site.clock.now = NOW


@pytest.mark.parametrize(
    "damaged", [b'{"format": 1, "classes": ', b"[]", b'{"format": 1, "classes": [7]}'], ids=str
)
def test_a_damaged_fleet_file_is_a_typed_refusal_not_a_500(site: Site, damaged: bytes) -> None:
    """``fleet.json`` names the classes (the default one first): damaged, a rollout of the
    default class is a ``StorageError`` naming the cause. Over the control plane a request
    names no default (its class is the caller's, from its credential): it is answered."""
    path = site.fleet.directory / "fleet.json"
    kept = path.read_bytes()
    events = site.fleet.events(limit=100_000)
    try:
        path.write_bytes(damaged)
        with pytest.raises(StorageError, match="the fleet's file is damaged"):
            desired_rollout(site.fleet)({"dry_run": True})
        assert site.fleet.events(limit=100_000) == events
        with site.client("node-0001", "control") as control:
            url = f"{site.servers.control_url}/v1/rollouts"
            response = control.post(url, json={"dry_run": True})
        assert response.status_code == 200, response.text
        assert [n["node"] for n in response.json()["nodes"]] == ["node-0001"]
    finally:
        path.write_bytes(kept)


# --- media types -----------------------------------------------------------------------------

_NOT_JSON = ["text/plain", "application/x-www-form-urlencoded", "application/cbor"]


@pytest.mark.parametrize("ctype", _NOT_JSON)
def test_a_json_body_of_another_media_type_is_415_and_changes_nothing(
    site: Site, ctype: str
) -> None:
    events = site.fleet.events(limit=100_000)
    headers = {"content-type": ctype}
    with site.anonymous() as client:
        challenge = client.post(
            f"{site.servers.admission_url}/fleet/admission/challenge",
            content=b'{"node": "node-0001"}',
            headers=headers,
        )
    with site.operator() as operator:
        place = operator.post(
            f"{site.servers.control_url}/v1/placements",
            content=b'{"vm": "cvm-typed"}',
            headers=headers,
        )
    with site.client("node-0001", "control") as control:
        roll = control.post(
            f"{site.servers.control_url}/v1/rollouts", content=b'{"dry_run": true}', headers=headers
        )
    for response in (challenge, place, roll):
        assert problem(response) == (415, "unsupported-media-type", "Unsupported Media Type")
    assert "cvm-typed" not in [p.vm for p in site.authority.placements()]
    assert site.fleet.events(limit=100_000) == events  # no rollout-requested


@pytest.mark.parametrize("charset", ["latin-1", "utf-16", "x-unknown"])
def test_a_json_body_in_a_charset_other_than_utf_8_is_415_and_changes_nothing(
    site: Site, charset: str
) -> None:
    # RFC 8259 §8.1: JSON between systems is UTF-8; "é" in Latin-1 is not read as UTF-8
    events = site.fleet.events(limit=100_000)
    placed = site.authority.placements()
    headers = {"content-type": f"application/json; charset={charset}"}
    with site.anonymous() as client:
        challenge = client.post(
            f"{site.servers.admission_url}/fleet/admission/challenge",
            content=b'{"node": "node-0001"}',
            headers=headers,
        )
    with site.operator() as operator:
        place = operator.post(
            f"{site.servers.control_url}/v1/placements",
            content='{"vm": "cvm-\u00e9"}'.encode("latin-1"),
            headers=headers,
        )
    with site.client("node-0001", "control") as control:
        roll = control.post(
            f"{site.servers.control_url}/v1/rollouts", content=b'{"dry_run": true}', headers=headers
        )
    for response in (challenge, place, roll):
        assert problem(response) == (415, "unsupported-media-type", "Unsupported Media Type")
        detail = Problem.from_cbor(response.content).detail
        assert detail == f"the request body must be UTF-8 (charset={charset} given)"
    assert site.authority.placements() == placed
    assert site.fleet.events(limit=100_000) == events  # no rollout-requested


_JSON_OR_UNTYPED = {
    "untyped": ("cvm-untyped", {}),
    "JSON": ("cvm-json", {"content-type": "application/json"}),
    "JSON with a charset": ("cvm-charset", {"content-type": "Application/JSON; charset=utf-8"}),
}


@pytest.mark.parametrize(("vm", "headers"), _JSON_OR_UNTYPED.values(), ids=_JSON_OR_UNTYPED.keys())
def test_a_json_body_typed_as_json_or_untyped_is_read(
    site: Site, vm: str, headers: dict[str, str]
) -> None:
    with site.anonymous() as client:
        challenge = client.post(
            f"{site.servers.admission_url}/fleet/admission/challenge",
            content=b'{"node": "node-0001"}',
            headers=headers,
        )
    assert challenge.status_code == 200, challenge.text
    with site.operator() as control:
        place = control.post(
            f"{site.servers.control_url}/v1/placements",
            content=json.dumps({"vm": vm}).encode(),
            headers=headers,
        )
    assert place.status_code == 201, place.text
    assert place.json()["vm"] == vm


@pytest.mark.parametrize(
    "headers",
    [{}, {"content-type": "application/json"}, {"content-type": "application/cose"}],
    ids=["untyped", "JSON", "COSE"],
)
def test_an_admission_request_not_typed_as_cbor_is_415(site: Site, headers: dict[str, str]) -> None:
    answer = site.prepare("node-0003")
    request = AdmissionRequest(
        answer.node,
        answer.nonce,
        answer.evidence.encode(),
        {p: make_csr(k, node=answer.node, plane=p) for p, k in answer.keys.items()},
    ).encode()
    before = len(site.authority.credentials.of_node("node-0003"))
    with site.anonymous() as client:
        response = client.post(
            f"{site.servers.admission_url}/fleet/admission", content=request, headers=headers
        )
    assert problem(response) == (415, "unsupported-media-type", "Unsupported Media Type")
    assert len(site.authority.credentials.of_node("node-0003")) == before


def test_a_rollout_that_starts_and_finds_its_class_locked_is_recorded_and_costs_a_token(
    site: Site,
) -> None:
    """A request that passed the checks starts a run; a run refused by what only the run can
    find (the class's rollout lock held by the operator's ``fleet rollout``: 409 ``in-use``;
    a release missing; the desired state's approvals lapsed by the run's clock) was asked
    for, so it is on the record (``rollout-requested``) and cost its node a token: checked
    before, the lock could be taken between the check and the run, and a node looping on a
    held lock is what the rate bounds. Last in the module: it spends node-0003's tokens."""
    url = f"{site.servers.control_url}/v1/rollouts"
    before = len(site.fleet.events(limit=100_000))
    answers: list[tuple[int, str, str]] = []
    held = DirectoryLock(DesiredStore(site.fleet).directory / "node-7", ".rollout.lock")
    try:
        with site.client("node-0003", "control") as control:
            for _ in range(6):  # at most five tokens: the sixth at the latest is over the rate
                answers.append(problem(control.post(url, json={"dry_run": True})))
                if answers[-1][0] == 503:
                    break
    finally:
        held.close()
    locked = answers[:-1]
    assert 1 <= len(locked) <= 5
    assert set(locked) == {(409, "in-use", "In Use")}
    assert answers[-1][:2] == (503, "rollout-rate")
    added = site.fleet.events(limit=100_000)[before:]
    assert [(e.node, e.kind) for e in added] == [("node-0003", "rollout-requested")] * len(locked)
