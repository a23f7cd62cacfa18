"""A datacenter for the dashboard's tests and screenshots, built with the real pieces.

On the platform tests' world (a vendor, a trusted and an untrusted transparency service
running in this process, releases 1.0 and 2.0 of every component, a PFM): a SAFE review of
the BMC firmware with one open finding, a fleet of six nodes of a class that requires it,
admission set up, and then —

* ``node-0001`` … ``node-0003`` attested and admitted;
* ``node-0004`` boots vendor-signed BMC firmware that was never logged and is quarantined by
  its own attestation (the EAR's ``rot`` submodule names the failed check);
* ``node-0005`` quarantined by an operator, with a reason full of HTML and script;
* ``node-0006`` manufactured, never attested (pending);
* on the trusted log, a statement whose subject is HTML and script, and on a third log
  (``ops-log``, cosigned by a witness) one whose *issuer* is (its registration policy admits
  that issuer), about the fleet's BMC firmware: an unannounced release;
* an HSM that released a key to an attested VM and refused another (the key release demo),
  with a ``keyrelease.toml`` offering the key by name;
* a monitor database holding a genuine split view: two checkpoints of one origin, both
  signed by its key, with different roots at the same size.

Everything is under one directory with a ``dashboard.toml`` naming the sources, and one
operator (``OPERATOR`` / ``PASSWORD``). The dashboard judges at ``SEEN`` (55 minutes after
the world's clock), so credentials and EARs are current. Keys are fresh each run (digests
differ); the story, the names and the times are the same every time.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import json
import time
from collections.abc import Iterator
from pathlib import Path

from tests.fleet.admission_world import admission_world
from tests.platform.node_world import NOW, VENDOR, World, make_world

from ironroot.cose import create_statement
from ironroot.crypto import Algorithm, PrivateKey
from ironroot.errors import AdmissionDenied
from ironroot.fleet import Fleet, attest_node, quarantine
from ironroot.hsm import parse_audit_log
from ironroot.keyrelease import demo_release
from ironroot.log import Checkpoint, NoteSigner, sign_checkpoint
from ironroot.monitor import MonitorStore
from ironroot.platform import AccountStore
from ironroot.transparency import ServiceThread, TransparencyClient, TransparencyService
from ironroot.web import Dashboard
from ironroot.witness import (
    ForkProof,
    WitnessedLog,
    WitnessThread,
    init_witness_dir,
    open_witness,
)

SEEN = NOW + dt.timedelta(minutes=55)
OPERATOR = "alice"
PASSWORD = "correct horse battery staple"
CHEAP_SCRYPT = (2**10, 8, 1)  # the operator's password hash (build() says why)
HOSTILE = "<script>window.__pwned=1</script><img src=x onerror=window.__pwned=2>"
HOSTILE_ISSUER = "https://evil.example/" + HOSTILE
OPS_ORIGIN = "ops.example/log"
WRITE_TOKEN = "ops-write-token-7b1d0c5e9a"  # a secret the pages must never show
HOSTILE_REASON = "BMC swapped outside change control " + HOSTILE
ADMITTED = ("node-0001", "node-0002", "node-0003")
ROGUE_FIRMWARE = "node-0004"
HELD = "node-0005"
PENDING = "node-0006"


@dataclasses.dataclass
class WebWorld:
    """The built world: its data directory and what the tests look for."""

    data: Path
    world: World
    fleet: Fleet
    hostile_entry: str
    hostile_issuer_entry: str
    review_entry: str

    def dashboard(self, **options: object) -> Dashboard:
        return Dashboard.open(self.data, clock=lambda: SEEN, **options)  # type: ignore[arg-type]


def _hostile_statement(world: World) -> bytes:
    statement = create_statement(
        world.statement_key,
        json.dumps({"note": HOSTILE}).encode(),
        iss=VENDOR,
        sub=HOSTILE,
        content_type="application/json",
    )
    return world.trusted.register(statement).transparent_statement


def _split_view(path: Path) -> None:
    """A monitor database holding a fork: two signed checkpoints of one origin, same size,
    different roots (what a log that shows two views signs)."""
    key = PrivateKey.generate(Algorithm.ED25519)
    signer = NoteSigner("split.example", key)
    first = sign_checkpoint(Checkpoint("split.example", 7, bytes(32)), [signer])
    second = sign_checkpoint(Checkpoint("split.example", 7, bytes([1]) * 32), [signer])
    proof = ForkProof("split.example", first, second, (), "monitor", int(NOW.timestamp()))
    store = MonitorStore(path)
    try:
        store.add_fork("split.example", proof.encode(), int(NOW.timestamp()))
    finally:
        store.close()


def _ops_log(data: Path) -> bytes:
    """The operators' log (origin ``ops.example/log``), whose registration policy admits an
    issuer named in HTML and script, and whose checkpoints a witness cosigns (quorum 1): a
    statement by that issuer about the fleet's BMC firmware is registered. Afterwards its
    configuration gains a write token (a secret the dashboard must never show)."""
    directory = data / "ops-log"
    (directory / "keys").mkdir(parents=True)
    log_key = PrivateKey.generate(Algorithm.ED25519)
    (directory / "keys" / "checkpoint.key").write_bytes(log_key.to_pem())
    issuer = PrivateKey.generate(Algorithm.ES384)
    (directory / "issuer.pub.pem").write_bytes(issuer.public_key.to_pem())
    witness_dir = data / "witness"
    log = WitnessedLog(OPS_ORIGIN, (NoteSigner(OPS_ORIGIN, log_key).verifier(),))
    config = init_witness_dir(witness_dir, name="witness.example/w1", logs=[log])
    vkey = config.cosigners()[0].verifier().vkey
    with contextlib.closing(open_witness(witness_dir)) as witness, WitnessThread(witness) as w:
        (directory / "ironroot.toml").write_text(
            "[transparency]\n"
            'service_issuer = "https://ops.example"\n'
            "batch_linger = 0.0\n"
            "[[transparency.issuers]]\n"
            f'iss = "{HOSTILE_ISSUER}"\n'
            'key = "issuer.pub.pem"\n'
            "[log]\n"
            f'origin = "{OPS_ORIGIN}"\n'
            "witness_quorum = 1\n"
            "witness_timeout = 5.0\n"
            "[[log.witnesses]]\n"
            f'url = "{w.url}"\n'
            f'key = "{vkey}"\n'
        )
        service = TransparencyService.open(directory)
        with service, ServiceThread(service) as server, TransparencyClient(server.url) as client:
            statement = create_statement(
                issuer,
                b"{}",
                iss=HOSTILE_ISSUER,
                sub="pkg:firmware/acme/bmc",
                content_type="application/json",
            )
            issued = client.register(statement).transparent_statement
            deadline = time.monotonic() + 20
            while not (directory / "witnessed-checkpoint").is_file():
                if time.monotonic() > deadline:
                    raise AssertionError("the witness did not cosign the ops log's checkpoint")
                time.sleep(0.05)
    with (directory / "ironroot.toml").open("a") as config_file:
        config_file.write(f'[auth]\nwrite_tokens = ["{WRITE_TOKEN}"]\n')
    (directory / "ironroot.toml").chmod(0o600)
    return issued


def _keyrelease(directory: Path) -> None:
    demo_release(directory)
    records = parse_audit_log((directory / "hsm" / "audit.jsonl").read_bytes())
    handle = next(r.key for r in records if r.operation == "generate" and r.result == "ok")
    (directory / "keyrelease.toml").write_text(
        "[keyrelease]\n"
        "[keyrelease.hsm]\n"
        'dir = "hsm"\nrot_device = "host-k"\nsealing_secret_file = "absent"\n'
        'identity = "keyrelease"\ncredential_file = "absent"\n'
        f'[keyrelease.keys.db-key]\nhandle = "{handle}"\n'
    )


def build(root: Path, world: World) -> WebWorld:
    data = root / "data"
    data.mkdir(parents=True)
    aw = admission_world(world)
    klass = aw.node_class(safe="medium", reviewed=(3.1,))
    fleet, authority = aw.fleet(data / "fleet", 6, klass=klass)

    def at(minutes: int) -> dt.datetime:  # attestations spread over 45 minutes
        return NOW + dt.timedelta(minutes=minutes)

    for node, minutes in zip((*ADMITTED, HELD), (10, 15, 20, 25), strict=True):
        attest_node(fleet, node, now=at(minutes), authority=authority)
    secret = world.bundle("bmc", svn=3, tag="never logged")
    fleet.rot(ROGUE_FIRMWARE).boot(secret, now=at(29))
    with contextlib.suppress(AdmissionDenied):
        attest_node(fleet, ROGUE_FIRMWARE, now=at(30), authority=authority)
    for node, minutes in zip(ADMITTED[:2], (40, 45), strict=True):  # the scanner's next round
        attest_node(fleet, node, now=at(minutes), authority=authority)
    quarantine(fleet, HELD, HOSTILE_REASON, now=at(50))

    hostile = _hostile_statement(world)
    issued = _ops_log(data)
    _keyrelease(data / "keyrelease")
    _split_view(data / "monitor.db")
    trusted = world.root / "trusted-log"
    (data / "dashboard.toml").write_text(
        'title = "Ironroot · rack 7"\n'
        "[sources]\n"
        f'logs = ["{trusted}", "ops-log"]\n'
        'fleet = "fleet"\n'
        'keyrelease = ["keyrelease"]\n'
        'monitor = ["monitor.db"]\n'
        'witness = ["witness"]\n'
    )
    dashboard = Dashboard.open(data)
    # Every test logs in, and a login hashes the password with the scrypt parameters stored
    # beside the operator's hash: the operator gets a small work factor, so a login costs a
    # millisecond instead of the default's (N=2^15) tens. `dashboard passwd` and the default
    # are tested in test_web_units.py and test_web_cli.py.
    dashboard.config.state_dir.mkdir(mode=0o700, exist_ok=True)
    accounts = AccountStore(dashboard.config.state_dir / "operators.json", kdf=CHEAP_SCRYPT)
    accounts.add(OPERATOR, PASSWORD, "ReadOnly")
    assert dashboard.operators.names == [OPERATOR]
    from ironroot.web._fleet import entry_id_of

    return WebWorld(
        data,
        world,
        fleet,
        entry_id_of(hostile) or "",
        entry_id_of(issued) or "",
        entry_id_of(aw.review("1.0", (3.1,))) or "",
    )


@contextlib.contextmanager
def web_world(root: Path) -> Iterator[WebWorld]:
    """The world, its logs served for as long as the context lasts."""
    with make_world(root / "world") as world:
        yield build(root, world)
