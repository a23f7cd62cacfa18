"""A fleet served over real TLS for tests: the admission service and both planes on loopback
(:class:`ironroot.fleet.FleetServers`) at a clock the test moves, and a node's side of
admission over HTTPS, keeping its keys and credentials for clients that present them."""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from tests.fleet.admission_world import AdmissionWorld
from tests.platform.node_world import NOW, World

from ironroot.cose import Problem, decode_cbor
from ironroot.crypto import Algorithm, PrivateKey
from ironroot.fleet import (
    PLANES,
    AdmissionAuthority,
    AdmissionRequest,
    Fleet,
    FleetServers,
    NodeEvidence,
    collect_evidence,
    decode_nonce,
    make_csr,
)
from ironroot.http import PROBLEM_CBOR, client_context

REFUSED_AT_HANDSHAKE = (httpx.ConnectError, httpx.ReadError, httpx.RemoteProtocolError)


class Clock:
    """The time the servers judge by (a test moves it)."""

    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> dt.datetime:
        return self.now


@dataclass
class Answer:
    """A node's answer to a challenge: its keys per plane and its evidence."""

    node: str
    nonce: bytes
    keys: dict[str, PrivateKey]
    evidence: NodeEvidence

    @property
    def spkis(self) -> dict[str, bytes]:
        return {p: k.public_key.to_der() for p, k in self.keys.items()}


@dataclass
class Site:
    fleet: Fleet
    authority: AdmissionAuthority
    servers: FleetServers
    clock: Clock
    files: Path
    world: AdmissionWorld

    def anonymous(self) -> httpx.Client:
        return httpx.Client(verify=client_context(self.servers.ca_file))

    def challenge(self, node: str) -> bytes:
        with self.anonymous() as client:
            answer = client.post(
                f"{self.servers.admission_url}/fleet/admission/challenge", json={"node": node}
            )
        assert answer.status_code == 200, answer.text
        return decode_nonce(answer.json()["nonce"])

    def prepare(self, node: str, *, at: dt.datetime = NOW) -> Answer:
        """The node's answer to a fresh challenge over HTTPS (not sent yet)."""
        nonce = self.challenge(node)
        keys = {p: PrivateKey.generate(Algorithm.ES384) for p in PLANES}
        spkis = {p: k.public_key.to_der() for p, k in keys.items()}
        evidence = collect_evidence(self.fleet, node, nonce=nonce, keys=spkis, now=at)
        return Answer(node, nonce, keys, evidence)

    def send(self, answer: Answer, evidence: NodeEvidence | None = None) -> httpx.Response:
        """POST the answer (with ``evidence`` in place of its own, when given); on 200 the
        node's keys and credentials are written to ``files/<node>/``."""
        request = AdmissionRequest(
            answer.node,
            answer.nonce,
            (evidence or answer.evidence).encode(),
            {p: make_csr(k, node=answer.node, plane=p) for p, k in answer.keys.items()},
        )
        with self.anonymous() as client:
            response = self.post_admission(client, request.encode())
        if response.status_code == 200:
            folder = self.files / answer.node
            folder.mkdir(exist_ok=True)
            body = decode_cbor(response.content)
            for plane, key in answer.keys.items():
                (folder / f"{plane}.key.pem").write_bytes(key.to_pem())
                cert = x509.load_der_x509_certificate(body["credentials"][plane])
                (folder / f"{plane}.cert.pem").write_bytes(cert.public_bytes(Encoding.PEM))
        return response

    def admit(self, node: str, *, at: dt.datetime = NOW) -> httpx.Response:
        """Admit ``node`` over HTTPS as the node would."""
        return self.send(self.prepare(node, at=at))

    def post_admission(self, client: httpx.Client, body: bytes) -> httpx.Response:
        return client.post(
            f"{self.servers.admission_url}/fleet/admission",
            content=body,
            headers={"content-type": "application/cbor"},
        )

    def client(self, node: str, plane: str) -> httpx.Client:
        """A client presenting ``node``'s ``plane`` credential."""
        folder = self.files / node
        context = client_context(
            self.servers.ca_file, folder / f"{plane}.cert.pem", folder / f"{plane}.key.pem"
        )
        return httpx.Client(verify=context)

    def operator(self, name: str = "alice", *, at: dt.datetime = NOW) -> httpx.Client:
        """A client presenting operator ``name``'s control-plane credential (issued now)."""
        key, credential = self.authority.issue_operator(name, now=at)
        folder = self.files / f"operator-{name}"
        folder.mkdir(exist_ok=True)
        (folder / "control.key.pem").write_bytes(key.to_pem())
        (folder / "control.cert.pem").write_bytes(credential.pem)
        return self.client(f"operator-{name}", "control")


def problem(response: httpx.Response) -> tuple[int, str, str]:
    """(status, code, title) of a problem response (concise problem details, RFC 9290)."""
    assert response.headers["content-type"] == PROBLEM_CBOR, response.text
    problem = Problem.from_cbor(response.content)
    assert problem.status == response.status_code
    return response.status_code, str(problem.extra["code"]), problem.title


@contextlib.contextmanager
def running_site(world: World, base: Path) -> Iterator[Site]:
    """A fleet of three nodes under ``base``, every node admitted, its servers running, and
    the host's 2.0 release in a folder the rollouts read."""
    from tests.fleet.admission_world import admission_world

    from ironroot.fleet import FleetServers, desired_rollout

    aw = admission_world(world)
    fleet, authority = aw.fleet(base / "fleet", 3)
    clock = Clock()
    files = base / "nodes"
    files.mkdir()
    releases = base / "releases"  # the host's 2.0 release, for rollouts
    releases.mkdir()
    host = world.release("host", "2.0")
    (releases / "host-2.0.bin").write_bytes(host.bundle)
    for n, statement in enumerate(host.statements):
        (releases / f"host-2.0.{n}.ts").write_bytes(statement)
    rollout = desired_rollout(fleet, [releases])
    with FleetServers(authority, clock=clock, rollout=rollout) as servers:
        made = Site(fleet, authority, servers, clock, files, aw)
        for node in fleet.node_ids():
            assert made.admit(node).status_code == 200
        yield made
