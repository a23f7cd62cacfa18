"""The fleet's admission service and planes attacked over real TLS sockets: request bodies
that are not plain JSON objects, hostile node and class names, methods not allowed, clients
that go away mid-request, and conflicting requests at once. Every refusal is a problem with
its exact status and code; the servers keep serving and the registry stays consistent."""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.fleet.desired_world import ALICE, BOB, make_ops
from tests.fleet.fleet_site import Answer, Site, problem, running_site
from tests.platform.node_world import NOW, World, make_world

from ironroot.crypto import Algorithm, PrivateKey
from ironroot.ear import ChallengeLimits, NonceStore
from ironroot.errors import Conflict, NotFound
from ironroot.fleet import (
    PLANES,
    AdmissionRequest,
    DesiredState,
    DesiredStore,
    collect_evidence,
    decode_nonce,
    make_csr,
    quarantine,
    readmit,
)
from ironroot.http import client_context


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with make_world(tmp_path_factory.mktemp("attack-world")) as w:
        yield w


@pytest.fixture(scope="module")
def site(world: World, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    with running_site(world, tmp_path_factory.mktemp("attack")) as made:
        yield made


def _still_serving(site: Site) -> None:
    with site.anonymous() as client:
        assert client.get(f"{site.servers.admission_url}/health").status_code == 200
    with site.client("node-0001", "control") as control:
        assert control.get(f"{site.servers.control_url}/v1/whoami").status_code == 200


# --- request bodies --------------------------------------------------------------------------

_NOT_PLAIN_JSON = {
    "lone surrogate": b'{"node": "\\ud800"}',
    "lone surrogate key": b'{"\\udc00": 1, "node": "node-0001"}',
    "duplicate key": b'{"node": "node-0001", "node": "node-0002"}',
    "NaN": b'{"node": "node-0001", "n": NaN}',
    "Infinity": b'{"node": "node-0001", "n": -Infinity}',
    "huge integer": b'{"node": "node-0001", "n": ' + b"9" * 5000 + b"}",
    "number past a double": b'{"node": "node-0001", "n": -1e400}',
    "nested deep": b'{"node": "node-0001", "n": ' + b"[" * 30_000 + b"]" * 30_000 + b"}",
    "not UTF-8": b'{"node": "\xff"}',
    "a list": b'["node-0001"]',
    "empty": b"",
    "CBOR": b"\xa1dnodeinode-0001",
}


@pytest.mark.parametrize("body", _NOT_PLAIN_JSON.values(), ids=_NOT_PLAIN_JSON.keys())
def test_a_challenge_body_that_is_not_a_plain_json_object_is_400(site: Site, body: bytes) -> None:
    with site.anonymous() as client:
        response = client.post(
            f"{site.servers.admission_url}/fleet/admission/challenge",
            content=body,
            headers={"content-type": "application/json"},
        )
    assert problem(response) == (400, "malformed", "Malformed Input")


@pytest.mark.parametrize(
    "body",
    [b'{"vm": "cvm-x", "node": "\\udc00"}', b'{"vm": "cvm-x", "vm": "cvm-y"}'],
    ids=["lone surrogate", "duplicate key"],
)
def test_a_placement_body_that_is_not_a_plain_json_object_is_400(site: Site, body: bytes) -> None:
    with site.operator() as control:
        response = control.post(f"{site.servers.control_url}/v1/placements", content=body)
    assert problem(response) == (400, "malformed", "Malformed Input")
    assert not [p for p in site.authority.placements() if p.vm in ("cvm-x", "cvm-y")]


def test_a_body_with_a_member_the_endpoint_does_not_name_is_400_and_changes_nothing(
    site: Site,
) -> None:
    """A misspelt ``node`` is refused, not read as "any node": the VM is placed nowhere."""
    with site.operator() as control:
        response = control.post(
            f"{site.servers.control_url}/v1/placements",
            json={"vm": "cvm-typo", "nod": "node-0003"},
        )
    assert problem(response) == (400, "malformed", "Malformed Input")
    assert "cvm-typo" not in [p.vm for p in site.authority.placements()]
    with site.anonymous() as client:
        response = client.post(
            f"{site.servers.admission_url}/fleet/admission/challenge",
            json={"node": "node-0001", "nodes": ["node-0002"]},
        )
    assert problem(response) == (400, "malformed", "Malformed Input")


def test_oversized_bodies_are_413_before_they_are_read(site: Site) -> None:
    with site.anonymous() as client:
        challenge = client.post(
            f"{site.servers.admission_url}/fleet/admission/challenge", content=b" " * 65537
        )
        assert problem(challenge) == (413, "payload-too-large", "Payload Too Large")
        admission = site.post_admission(client, b"\0" * (2 * 1024 * 1024 + 1))
        assert problem(admission) == (413, "payload-too-large", "Payload Too Large")


# --- names -----------------------------------------------------------------------------------

_HOSTILE_NODES = ["../../etc/passwd", "node-0001/..", "node-0001\0", "x" * 10_000, ""]


@pytest.mark.parametrize("node", _HOSTILE_NODES, ids=["dotdot", "slash", "nul", "long", "empty"])
def test_a_node_name_with_path_characters_is_400_never_looked_up(site: Site, node: str) -> None:
    """Outside the node-id syntax: refused for its syntax alone (no registry lookup, so no
    answer that differs for a registered id)."""
    with site.anonymous() as client:
        response = client.post(
            f"{site.servers.admission_url}/fleet/admission/challenge", json={"node": node}
        )
    assert problem(response) == (400, "malformed", "Malformed Input")


@pytest.mark.parametrize(
    "path", ["..%2f..%2fetc", "%2e%2e", "node-0001%2f..", "%00", "%ed%a0%80", "x" * 8000]
)
def test_a_hostile_node_path_is_404(site: Site, path: str) -> None:
    with site.operator() as control:
        response = control.get(f"{site.servers.control_url}/v1/nodes/{path}")
    assert problem(response) == (404, "not-found", "Not Found")
    with site.client("node-0001", "control") as node:  # not its own: refused unread
        response = node.get(f"{site.servers.control_url}/v1/nodes/{path}")
    if "%2f" in path:  # a slash: no route
        assert problem(response) == (404, "not-found", "Not Found")
    else:
        assert problem(response) == (403, "not-own-node", "Role Not Permitted")


@pytest.mark.parametrize("name", ["../class/node-7", "node-7/../node-7", "/etc", "node-7\0"])
def test_a_class_name_with_path_characters_names_no_class(site: Site, name: str) -> None:
    """Never a path; over the control plane, never a class the caller may roll out (403,
    before the fleet is asked)."""
    with pytest.raises(NotFound):
        site.fleet.node_class(name)
    with site.client("node-0001", "control") as control:
        response = control.post(
            f"{site.servers.control_url}/v1/rollouts", json={"class": name, "dry_run": True}
        )
    assert problem(response) == (403, "rollout-not-own-node", "Role Not Permitted")


# --- rollouts asked by a caller that may not ---------------------------------------------


def test_a_rollout_of_a_class_without_a_desired_state_is_refused_unrecorded_and_free(
    site: Site,
) -> None:
    """No desired state is published yet (test_rollouts_started_at_once_run_one_at_a_time,
    below, publishes one): a node's rollout request is a 404 as before, but refused by the
    check, not by the run, so no ``rollout-requested`` event says a rollout was asked for,
    and it costs no token (five spent the node's burst: a 503 ``rollout-rate`` after)."""
    assert DesiredStore(site.fleet).version("node-7") == 0
    before = site.fleet.events(limit=100_000)
    with site.client("node-0003", "control") as control:
        for _ in range(6):
            response = control.post(
                f"{site.servers.control_url}/v1/rollouts",
                json={"dry_run": True},
                headers={"Accept": "application/json"},
            )
            answer = response.json()
            assert (response.status_code, answer["code"], answer["detail"]) == (
                404,
                "not-found",
                "class node-7 has no desired state (run `ironroot fleet desired publish`)",
            )
    assert site.fleet.events(limit=100_000) == before


def test_a_rollout_body_naming_its_nodes_twice_is_400_not_read_one_way_then_the_other(
    site: Site,
) -> None:
    """A duplicate member is where a check and the action could read different values (the
    first ``nodes``, the caller's own, checked; the last, another node, run): refused whole."""
    events = site.fleet.events(limit=100_000)
    with site.client("node-0001", "control") as control:
        response = control.post(
            f"{site.servers.control_url}/v1/rollouts",
            content=b'{"dry_run": true, "nodes": ["node-0001"], "nodes": ["node-0002"]}',
            headers={"content-type": "application/json"},
        )
    assert problem(response) == (400, "malformed", "Malformed Input")
    assert site.fleet.events(limit=100_000) == events


def _raw(site: Site, plane: str, data: bytes) -> bytes:
    """``data`` sent to the control plane on one TLS connection presenting node-0001's
    ``plane`` credential, and every byte the server answers until it closes or idles."""
    folder = site.files / "node-0001"
    context = client_context(
        site.servers.ca_file, folder / f"{plane}.cert.pem", folder / f"{plane}.key.pem"
    )
    host, port = site.servers.control_url.removeprefix("https://").split(":")
    answer = b""
    with (
        socket.create_connection((host, int(port)), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname=host) as tls,
    ):
        tls.sendall(data)
        tls.settimeout(2)
        try:
            while chunk := tls.recv(65536):
                answer += chunk
        except TimeoutError:
            pass
    return answer


def test_a_request_smuggled_in_the_body_of_a_refused_one_is_never_served(site: Site) -> None:
    """The data-plane credential is refused on the control plane when the head arrives,
    before the body is read; the body — a rollout request of its own — is read and dropped,
    never served as the next request on the connection."""
    events = site.fleet.events(limit=100_000)
    inner = b'{"dry_run": true}'
    smuggled = (
        b"POST /v1/rollouts HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n%s" % (len(inner), inner)
    )
    head = (
        b"POST /v1/rollouts HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n" % len(smuggled)
    )
    answer = _raw(site, "data", head + smuggled)
    assert answer.startswith(b"HTTP/1.1 403 ")
    assert answer.count(b"HTTP/1.1 ") == 1
    assert b"wrong-plane" in answer
    assert site.fleet.events(limit=100_000) == events


def test_a_rollout_framed_by_both_length_and_chunks_is_refused_at_the_parser(site: Site) -> None:
    events = site.fleet.events(limit=100_000)
    body = b'{"dry_run": true}'
    answer = _raw(
        site,
        "control",
        b"POST /v1/rollouts HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body),
    )
    assert answer.startswith(b"HTTP/1.1 400 ")
    assert answer.count(b"HTTP/1.1 ") == 1
    assert site.fleet.events(limit=100_000) == events


# --- methods ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("plane", "method", "path", "allow"),
    [
        ("admission", "GET", "/fleet/admission", "POST"),
        ("admission", "DELETE", "/fleet/ca", "GET, HEAD"),
        ("control", "PUT", "/v1/placements", "GET, HEAD, POST"),
        ("control", "POST", "/v1/nodes/node-0001", "GET, HEAD"),
        ("data", "POST", "/v1/placements", "GET, HEAD"),
    ],
)
def test_a_method_not_allowed_is_405_with_allow(
    site: Site, plane: str, method: str, path: str, allow: str
) -> None:
    url = getattr(site.servers, f"{plane}_url")
    client = site.anonymous() if plane == "admission" else site.client("node-0001", plane)
    with client:
        response = client.request(method, url + path, content=b"{}")
    assert problem(response) == (405, "http", "Method Not Allowed")
    assert set(response.headers["allow"].split(", ")) == set(allow.split(", "))


def test_a_body_on_a_get_is_ignored(site: Site) -> None:
    with site.client("node-0001", "control") as control:
        response = control.request(
            "GET", f"{site.servers.control_url}/v1/whoami", content=b'{"node": "node-0002"}'
        )
    assert response.status_code == 200
    assert response.json()["node"] == "node-0001"


# --- a flood of challenges --------------------------------------------------------------------


def _anonymous_from(site: Site, address: str) -> httpx.Client:
    """An anonymous client whose connections come from ``address`` (any of 127/8)."""
    context = client_context(site.servers.ca_file)
    return httpx.Client(transport=httpx.HTTPTransport(verify=context, local_address=address))


def test_a_flood_of_challenges_from_one_address_locks_no_node_out_of_admission(
    site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    # was: the full table refused every client challenges-full until the flood's nonces
    # expired. The authority's table, made small here (it holds 100,000).
    small = ChallengeLimits(max_outstanding=4, per_client=100)
    monkeypatch.setattr(
        site.authority, "nonces", NonceStore(lifetime=120, limits=small, service="fleet admission")
    )
    url = f"{site.servers.admission_url}/fleet/admission/challenge"
    with _anonymous_from(site, "127.0.0.1") as flooder:
        flood = [flooder.post(url, json={"node": "node-0003"}) for _ in range(5)]
        assert [r.status_code for r in flood] == [200, 200, 200, 200, 503]
        assert problem(flood[4]) == (503, "challenges-full", "Service Unavailable")
        assert int(flood[4].headers["retry-after"]) >= 1
        with _anonymous_from(site, "127.0.0.2") as node:
            mine = node.post(url, json={"node": "node-0003"})
        assert mine.status_code == 200, mine.text
        assert problem(flooder.post(url, json={"node": "node-0003"}))[1] == "challenges-full"
    assert len(site.authority.nonces) == 4

    def answer(nonce: bytes) -> Answer:
        keys = {p: PrivateKey.generate(Algorithm.ES384) for p in PLANES}
        spkis = {p: k.public_key.to_der() for p, k in keys.items()}
        evidence = collect_evidence(site.fleet, "node-0003", nonce=nonce, keys=spkis, now=NOW)
        return Answer("node-0003", nonce, keys, evidence)

    evicted = decode_nonce(flood[0].json()["nonce"])  # the flood's oldest, taken for the node
    refused = site.send(answer(evicted))
    assert problem(refused) == (400, "nonce-unknown", "Stale Or Mismatching Nonce")
    assert site.send(answer(decode_nonce(mine.json()["nonce"]))).status_code == 200


# --- clients that go away --------------------------------------------------------------------


def test_a_client_gone_mid_body_changes_nothing_and_the_server_serves_on(site: Site) -> None:
    before = len(site.fleet.events())
    host, port = site.servers.admission_url.removeprefix("https://").split(":")
    context = client_context(site.servers.ca_file)
    with (
        socket.create_connection((host, int(port)), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname=host) as tls,
    ):
        tls.sendall(
            b"POST /fleet/admission HTTP/1.1\r\nHost: x\r\nContent-Type: application/cbor\r\n"
            b"Content-Length: 100000\r\n\r\n" + b"\xa4" + b"\0" * 1000
        )
    _still_serving(site)
    assert len(site.fleet.events()) == before


# --- conflicting requests at once ------------------------------------------------------------


def _at_once(count: int, request: Callable[[], httpx.Response]) -> list[httpx.Response]:
    """``request()`` from ``count`` threads released together."""
    barrier = threading.Barrier(count)
    answers: list[httpx.Response] = []
    lock = threading.Lock()

    def run() -> None:
        barrier.wait()
        answer = request()
        with lock:
            answers.append(answer)

    threads = [threading.Thread(target=run) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return answers


def test_one_vm_placed_by_many_clients_at_once_is_placed_once(site: Site) -> None:
    url = f"{site.servers.control_url}/v1/placements"

    site.operator("racer").close()

    def place() -> httpx.Response:
        with site.client("operator-racer", "control") as control:
            return control.post(url, json={"vm": "cvm-once"})

    answers = _at_once(6, place)
    assert sorted(a.status_code for a in answers) == [201] + [409] * 5
    assert {problem(a)[1] for a in answers if a.status_code == 409} == {"vm-placed"}
    assert [p.vm for p in site.authority.placements()].count("cvm-once") == 1


def test_one_admission_replayed_by_many_clients_at_once_admits_once(site: Site) -> None:
    answer = site.prepare("node-0002")
    request = AdmissionRequest(
        answer.node,
        answer.nonce,
        answer.evidence.encode(),
        {p: make_csr(k, node=answer.node, plane=p) for p, k in answer.keys.items()},
    ).encode()
    before = len(site.authority.credentials.of_node("node-0002"))

    def send() -> httpx.Response:
        with site.anonymous() as client:
            return site.post_admission(client, request)

    answers = _at_once(4, send)
    assert sorted(a.status_code for a in answers) == [200, 400, 400, 400]
    refused = {problem(a) for a in answers if a.status_code == 400}
    assert refused == {(400, "nonce-reused", "Stale Or Mismatching Nonce")}
    assert len(site.authority.credentials.of_node("node-0002")) == before + 2  # one per plane


def test_two_quarantines_of_one_node_at_once_leave_it_wholly_quarantined(site: Site) -> None:
    site.authority.place("cvm-q", node="node-0002", now=NOW)
    barrier = threading.Barrier(2)

    def quarantine_it(reason: str) -> None:
        barrier.wait()
        quarantine(site.fleet, "node-0002", reason, now=NOW)

    threads = [threading.Thread(target=quarantine_it, args=(r,)) for r in ("one", "two")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    try:
        assert site.fleet.record_of("node-0002").status == "quarantined"
        assert all(s.revoked for s in site.authority.credentials.of_node("node-0002"))
        assert [p.state for p in site.authority.placements("node-0002")] == ["stopped"]
        kinds = [e.kind for e in site.fleet.events(node="node-0002")]
        assert kinds.count("quarantined") == 2
        assert kinds.count("quarantine-effects") == 2
    finally:
        readmit(site.fleet, "node-0002", now=NOW, authority=site.authority)
        assert site.admit("node-0002").status_code == 200


def test_a_placement_racing_a_quarantine_never_runs_on_the_quarantined_node(site: Site) -> None:
    """A placement reads the node admitted while a quarantine holds the registry's write lock,
    then the quarantine commits: the placement must be refused, not written after it. (In
    the library, from a thread whose connection is warm: a server's worker thread is not
    chosen by the test, and a fresh one's first read waits for the lock.)"""
    answers: list[object] = []
    warm = threading.Event()
    go = threading.Event()

    def place() -> None:
        site.fleet.record_of("node-0003")
        site.authority.placements("node-0003")
        warm.set()
        go.wait(10)
        try:
            answers.append(site.authority.place("cvm-raced", node="node-0003", now=NOW))
        except Conflict as exc:
            answers.append(exc)

    placing = threading.Thread(target=place)
    placing.start()
    assert warm.wait(10)
    with site.fleet.transaction():
        go.set()
        time.sleep(0.3)  # the placement reads the status, then waits for the write lock
        quarantine(site.fleet, "node-0003", "raced by a placement", now=NOW)
    placing.join()
    try:
        (answer,) = answers
        assert isinstance(answer, Conflict)
        assert answer.code == "node-not-admitted"
        running = [p for p in site.authority.placements("node-0003") if p.state == "running"]
        assert running == []
    finally:
        readmit(site.fleet, "node-0003", now=NOW, authority=site.authority)
        assert site.admit("node-0003").status_code == 200


def test_an_admission_racing_an_operator_quarantine_never_lifts_the_hold(
    site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An operator quarantines a node (a hold) after its admission read that it was not held
    but before the admission commits: the admission must be refused, not commit the node
    admitted with fresh credentials over the hold — refused as an answer older than the
    quarantine, which changes nothing (the commit checks that before the hold). (The
    quarantine is run where the race puts it, from the admission's own credential
    issuance: a server's timing is not the test's to choose.)"""
    answer = site.prepare("node-0003")
    issue = site.authority.ca._issue_key
    raced: list[bool] = []

    def issue_after_a_quarantine(*args: Any, **kwargs: Any) -> Any:
        if not raced:
            raced.append(True)
            quarantine(site.fleet, "node-0003", "held by an operator mid-admission", now=NOW)
        return issue(*args, **kwargs)

    monkeypatch.setattr(site.authority.ca, "_issue_key", issue_after_a_quarantine)
    try:
        response = site.send(answer)
        monkeypatch.undo()
        assert problem(response) == (400, "nonce-superseded", "Stale Or Mismatching Nonce")
        assert site.fleet.record_of("node-0003").status == "quarantined"
        assert all(c.revoked for c in site.authority.credentials.of_node("node-0003"))
        assert site.authority.state.held("node-0003") is not None
        assert [e.kind for e in site.fleet.events(node="node-0003")][-1] == "quarantine-effects"
    finally:
        monkeypatch.undo()
        readmit(site.fleet, "node-0003", now=NOW, authority=site.authority)
        assert site.admit("node-0003").status_code == 200


def test_an_admission_racing_a_quarantine_does_not_undo_it(
    site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A quarantine without a hold (what a failing attestation of the node does) commits
    after the admission checked the node's state but before it commits: the admission's
    evidence predates the quarantine, so it must be refused, not commit the node admitted
    with fresh credentials. (The quarantine is run where the race puts it, from the
    admission's own credential issuance.)"""
    answer = site.prepare("node-0003")
    issue = site.authority.ca._issue_key
    raced: list[bool] = []

    def issue_after_a_quarantine(*args: Any, **kwargs: Any) -> Any:
        if not raced:
            raced.append(True)
            quarantine(site.fleet, "node-0003", "drift found mid-admission", now=NOW, hold=False)
        return issue(*args, **kwargs)

    monkeypatch.setattr(site.authority.ca, "_issue_key", issue_after_a_quarantine)
    try:
        response = site.send(answer)
        monkeypatch.undo()
        assert problem(response) == (400, "nonce-superseded", "Stale Or Mismatching Nonce")
        assert site.fleet.record_of("node-0003").status == "quarantined"
        assert all(c.revoked for c in site.authority.credentials.of_node("node-0003"))
        assert [e.kind for e in site.fleet.events(node="node-0003")][-1] == "quarantine-effects"
    finally:
        monkeypatch.undo()
        assert site.admit("node-0003").status_code == 200


def test_a_credential_check_waits_for_no_writer(site: Site) -> None:
    """Every plane request reads the credential store: while a writer (an admission, a
    quarantine) holds the registry's write lock, the read goes on (WAL), it does not queue.
    (From a thread whose connection is warm, as a server's are after their first request.)"""
    serial = site.fleet.record_of("node-0001").credential_serial
    assert serial is not None
    warm, go, done = threading.Event(), threading.Event(), threading.Event()

    def check() -> None:
        site.authority.credentials.status(serial)
        site.authority.credentials.of_node("node-0001")
        site.authority.crl(now=NOW)
        warm.set()
        go.wait(10)
        site.authority.credentials.status(serial)
        site.authority.credentials.of_node("node-0001")
        site.authority.crl(now=NOW)
        done.set()

    reader = threading.Thread(target=check)
    reader.start()
    assert warm.wait(10)
    with site.fleet.transaction():
        go.set()
        read_while_held = done.wait(10)
    reader.join()
    assert read_while_held


def test_rollouts_started_at_once_run_one_at_a_time(site: Site, tmp_path: Path) -> None:
    with make_ops(tmp_path / "ops") as ops:
        store = DesiredStore(site.fleet)
        store.init(ops.governance())
        bundles = {"host": site.world.world.release("host", "2.0").bundle}
        state = DesiredState.build(
            site.fleet.node_class("node-7"), 1, bundles=bundles, fleet=site.fleet.identity()
        )
        store.publish("node-7", ops.sign(state, ALICE, BOB), now=NOW, registrar=ops.log)
    url = f"{site.servers.control_url}/v1/rollouts"

    def start() -> httpx.Response:
        with site.client("node-0001", "control") as control:
            return control.post(url, json={"wave_size": 3})

    answers = _at_once(3, start)  # the node's own rollout, three times at once
    assert {a.status_code for a in answers} <= {200, 409}
    assert {problem(a)[1] for a in answers if a.status_code == 409} <= {"in-use"}
    updated = [
        n["node"]
        for a in answers
        if a.status_code == 200
        for n in a.json()["nodes"]
        if n["outcome"] == "updated"
    ]
    assert updated == ["node-0001"]  # once, by one of them
    _still_serving(site)


# --- a caller quarantined while it sends its request --------------------------------------


def _signal_checks(monkeypatch: pytest.MonkeyPatch) -> threading.Event:
    """An event set once the control plane has checked a caller's credential."""
    from ironroot.fleet import _api

    checked = threading.Event()
    check = _api.check_caller

    def check_then_signal(*args: Any, **kwargs: Any) -> Any:
        try:
            return check(*args, **kwargs)
        finally:
            checked.set()

    monkeypatch.setattr(_api, "check_caller", check_then_signal)
    return checked


def test_a_caller_quarantined_while_it_sends_its_body_is_refused(
    site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A node's credential is checked when its request's head arrives; the node is then
    quarantined (its credentials revoked) while it still sends the body, which it may
    stretch to the server's body timeout. The request must be judged by the credential's
    standing when it acts, not when it began: refused (401 ``credential-revoked``), nothing
    recorded."""
    checked = _signal_checks(monkeypatch)

    def body() -> Iterator[bytes]:
        yield b'{"dry_run": '
        assert checked.wait(10)  # the server checked the caller on the head
        quarantine(site.fleet, "node-0002", "quarantined mid-request", now=NOW)
        yield b"true}"

    before = len(site.fleet.events(node="node-0002"))
    try:
        with site.client("node-0002", "control") as control:
            response = control.post(
                f"{site.servers.control_url}/v1/rollouts",
                content=body(),
                headers={"content-type": "application/json"},
            )
        assert problem(response) == (401, "credential-revoked", "Credential Rejected")
        kinds = [e.kind for e in site.fleet.events(node="node-0002")[before:]]
        assert "rollout-requested" not in kinds
    finally:
        monkeypatch.undo()
        readmit(site.fleet, "node-0002", now=NOW, authority=site.authority)
        assert site.admit("node-0002").status_code == 200


def test_an_operator_revoked_while_it_sends_its_body_places_nothing(
    site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same for an operator's placement: revoked between the head and the end of the
    body, the request is refused when it acts (401 ``credential-revoked``)."""
    with site.operator("slow") as control:
        checked = _signal_checks(monkeypatch)

        def body() -> Iterator[bytes]:
            yield b'{"vm": '
            assert checked.wait(10)
            assert site.authority.revoke_operator("slow", "left mid-request", now=NOW)
            yield b'"cvm-slow-body"}'

        response = control.post(
            f"{site.servers.control_url}/v1/placements",
            content=body(),
            headers={"content-type": "application/json"},
        )
    assert problem(response) == (401, "credential-revoked", "Credential Rejected")
    assert all(p.vm != "cvm-slow-body" for p in site.authority.placements())


def test_a_rollout_request_waiting_for_the_registry_holds_up_no_other_request(
    site: Site,
) -> None:
    """A rollout request records ``rollout-requested`` in the registry, which waits while a
    writer (an admission, a quarantine, a rollout's own wave) holds its write lock. The wait
    must be the request's own, in a worker thread: on the server's event loop it would hold
    up every other request of the control plane, a credential check included, until the
    writer commits (up to SQLite's 30 s busy timeout)."""
    url = site.servers.control_url
    answers: list[httpx.Response] = []

    def start() -> None:
        with site.client("node-0001", "control") as control:
            answers.append(control.post(f"{url}/v1/rollouts", json={"dry_run": True}, timeout=60))

    with site.client("node-0002", "control") as other:
        assert other.get(f"{url}/v1/whoami").status_code == 200  # a connection, warm
        starting = threading.Thread(target=start)
        with site.fleet.transaction():
            starting.start()
            time.sleep(0.5)  # the rollout request reaches its record and waits for the lock
            began = time.monotonic()
            me = other.get(f"{url}/v1/whoami", timeout=10)
            waited = time.monotonic() - began
            time.sleep(2.0)  # the writer's commit comes later still
        starting.join()
    assert me.status_code == 200
    assert waited < 1.5, f"a credential check waited {waited:.2f} s for a rollout's record"
    assert len(answers) == 1


def test_a_credential_check_on_a_fresh_thread_waits_for_no_writer(site: Site) -> None:
    """A server's worker threads come and go (an idle one ends): a credential check often
    runs on a thread whose first use of ``fleet.db`` it is. Setting up that thread's
    connection must not take the write lock when the tables are there already, or every
    such check waits for whatever writer holds it (up to SQLite's 30 s busy timeout)."""
    serial = site.fleet.record_of("node-0001").credential_serial
    assert serial is not None
    done = threading.Event()

    def check() -> None:
        site.authority.credentials.status(serial)
        site.authority.state.placements("node-0001")
        site.fleet.record_of("node-0001")
        done.set()

    with site.fleet.transaction():
        reader = threading.Thread(target=check)
        reader.start()
        read_while_held = done.wait(3)
    reader.join()
    assert read_while_held


# --- caching -----------------------------------------------------------------------------------


def test_answers_about_nodes_placements_credentials_and_nonces_are_never_cached(
    site: Site,
) -> None:
    # A node's state changes at any moment (a quarantine), and a nonce is single use: a cache
    # on the way, or in the client, must keep none of them, as the problems already say.
    control, data = site.servers.control_url, site.servers.data_url
    with site.operator() as operator, site.client("node-0001", "data") as node:
        answers = [
            operator.get(f"{control}/v1/whoami"),
            operator.get(f"{control}/v1/nodes"),
            operator.get(f"{control}/v1/nodes/node-0001"),
            operator.get(f"{control}/v1/placements"),
            node.get(f"{data}/v1/placements"),
        ]
    with site.anonymous() as anonymous:
        answers.append(
            anonymous.post(
                f"{site.servers.admission_url}/fleet/admission/challenge",
                json={"node": "node-0001"},
            )
        )
    for answer in answers:
        assert answer.status_code == 200, answer.request.url
        assert answer.headers.get("cache-control") == "no-store", answer.request.url
        assert answer.headers.get("x-content-type-options") == "nosniff", answer.request.url


# --- a browser holding a credential ----------------------------------------------------------

_FROM_A_PAGE = {
    "another site": {"origin": "https://evil.example", "sec-fetch-site": "cross-site"},
    "origin only": {"origin": "https://evil.example"},
    "fetch metadata only": {"sec-fetch-site": "same-site"},
    "opaque origin": {"origin": "null"},
}


def _made_by(headers: dict[str, str]) -> str:
    if "origin" in headers:
        return f"the web origin {headers['origin']!r}"
    return f"a {headers['sec-fetch-site']!r} page"


@pytest.mark.parametrize("headers", _FROM_A_PAGE.values(), ids=_FROM_A_PAGE.keys())
def test_a_change_a_web_page_sends_with_a_browser_s_credential_is_refused(
    site: Site, headers: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    # A person's operator credential kept in a browser goes with every request the browser
    # makes to the plane, those of any page it opens included; a POST without Content-Type
    # (taken as JSON) needs no CORS preflight. The planes serve no page: a request a page
    # made is refused before anything is read, and the caller's own client sends neither.
    caplog.set_level(logging.WARNING, "ironroot.fleet")
    with site.operator() as operator:
        response = operator.post(
            f"{site.servers.control_url}/v1/placements",
            content=b'{"vm": "cvm-from-a-page"}',
            headers=headers,
        )
    assert problem(response) == (403, "cross-site-request", "Role Not Permitted")
    assert "cvm-from-a-page" not in [p.vm for p in site.authority.placements()]
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warned == [f"POST /v1/placements: refused, a request from {_made_by(headers)}"]
    with site.client("node-0001", "control") as node:
        response = node.post(
            f"{site.servers.control_url}/v1/rollouts", content=b'{"dry_run": true}', headers=headers
        )
    assert problem(response) == (403, "cross-site-request", "Role Not Permitted")


def test_a_request_the_user_typed_in_a_browser_is_not_a_page_s(site: Site) -> None:
    with site.operator() as operator:
        response = operator.get(
            f"{site.servers.control_url}/v1/nodes", headers={"sec-fetch-site": "none"}
        )
    assert response.status_code == 200
