"""Seeds for the fleet-layer fuzz targets, made by the project's own code paths on one world.

:func:`fleet_seeds` builds, once per process, the audit tests' world (``tests/audit/
audit_world.py``: a vendor, two transparency services, a fleet of one node admitted by the
fleet's admission, its BMC firmware with a logged SAFE review), gives the node an HSM with a
signed audit checkpoint (as ``tests/audit/test_audit_hsm.py`` does), and records what each
target parses: the node's sealed audit bundle and the members it was sealed from, an admission
request the node would send (its evidence answering a fixed nonce, CSRs for keys derived from
fixed seeds), the credentials the fleet CA issued it, the auditor's trust file (with the key
files it names), and a desired state of its class approved by two signers with fixed keys,
published through ``DesiredStore`` (the stored ``v1.cbor`` and ``governance.json``). The
transparency services run only while this is built; what the targets need afterwards (the
fleet's directory, its RoT, its stores) stays in a scratch directory removed at exit. Keys the
world's own code draws (the vendor's, the services', the RoT's) are random per process; the
targets' own keys are derived from fixed seeds.

:func:`log_seeds` does the same for the witness and monitor targets, with no server: an
in-memory log (``Log.open_memory``) signed with a fixed Ed25519 key, grown in batches, a
witness holding its checkpoint at one size, and a monitor's SQLite state file after following
it (one honest round, and one that found a fork).

:func:`monitor_check_seeds` gives a monitor's state file *with* its high-water file, after a
round with the LMS leaf check ``ironroot monitor`` wires in (``ironroot.cli.monitor``'s
``_LmsLeaves``) over a log of firmware manifest statements naming LMS leaves (one leaf used
for two signatures, one signature in two statements): ``key_uses`` rows, and their tally in
``<state>.verified``. Each seed is a CBOR map ``{"state": <SQLite>, "verified": <JSON>}``, so
the mutations reach both files (the JSON as JSON), or ``{"state": <SQLite without its
instance>, "rows": [<key_uses row>, ...]}``, the rows as CBOR values the target writes into
the file (so a mutation retypes one column of one row), or all three (the target then tallies
the rows written into the high-water file, as whoever edits both files would); and the log
grown since with a reuse of a stored leaf, a use seen before and an entry whose leaves header
does not parse.

:func:`witness_state_seeds` gives the witness's own SQLite state file (``witness.sqlite3``) as
its ``SqliteWitnessStore`` writes it, cosigning that log: at the small size with evidence kept
of an inconsistent request and of a fork (a checkpoint of another tree at the same size, signed
with the log's key), and after cosigning the grown log.
"""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import datetime as dt
import functools
import hashlib
import os
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.serialization import Encoding

from ironroot.crypto import Algorithm, PrivateKey
from ironroot.witness import Witness, WitnessStore

if TYPE_CHECKING:
    from tests.audit.audit_world import AuditWorld

    from ironroot.audit import AuditExport, AuditTrust
    from ironroot.fleet import AdmissionAuthority, Fleet
    from ironroot.log import Log, NoteVerifier
    from ironroot.monitor import EntryCheck
    from ironroot.witness import Cosigner, StoredCheckpoint

__all__ = [
    "FleetSeeds",
    "LogSeeds",
    "fixed_key",
    "fleet_seeds",
    "log_seeds",
    "monitor_check_seeds",
    "scratch",
    "witness_state_seeds",
]

_CURVES = {
    Algorithm.ES256: ec.SECP256R1(),
    Algorithm.ES384: ec.SECP384R1(),
    Algorithm.ES512: ec.SECP521R1(),
}


def fixed_key(algorithm: Algorithm, label: str) -> PrivateKey:
    """A key derived from ``label``: the same in every process (ECDSA, Ed25519, ML-DSA)."""
    seed = hashlib.sha512(b"ironroot fuzz key\x00" + label.encode()).digest()
    if algorithm in _CURVES:
        curve = _CURVES[algorithm]
        order = {256: 2**256, 384: 2**384, 521: 2**521}[curve.key_size]
        scalar = int.from_bytes(seed, "big") % (order - 1) + 1
        return PrivateKey(ec.derive_private_key(scalar, curve), algorithm)
    if algorithm is Algorithm.ED25519:
        return PrivateKey(ed25519.Ed25519PrivateKey.from_private_bytes(seed[:32]), algorithm)
    return PrivateKey.from_mldsa_seed(algorithm, seed[:32])


@functools.cache
def scratch() -> Path:
    """A directory for this process's fuzz state (on tmpfs when there is one), removed at
    exit."""
    base = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None
    path = Path(tempfile.mkdtemp(prefix="ironroot-fuzz-", dir=base))
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path


# --- the fleet --------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class FleetSeeds:
    """What the fleet targets parse, and what they parse it against."""

    node: str
    attested: dt.datetime
    """When the node was attested: its credentials and the request's evidence are current."""
    bundle: bytes
    trust: AuditTrust
    members: Mapping[str, tuple[bytes, str]]
    export: AuditExport
    fleet: Fleet
    authority: AdmissionAuthority
    request: bytes
    request_nonce: bytes
    credentials: tuple[bytes, ...]
    desired_class: str
    desired_document: bytes
    desired_stored: bytes
    governance: bytes
    trust_file: Path
    """The auditor's trust file (``audit-trust.toml``) beside the key files it names."""


def _request(aw: AuditWorld, node: str, now: dt.datetime) -> tuple[bytes, bytes]:
    """An admission request of ``node`` (and its nonce): evidence answering a fixed nonce for
    CSRs of keys derived from fixed seeds, as ``attest_node`` makes it."""
    from ironroot.fleet import PLANES, AdmissionRequest, collect_evidence, make_csr

    fleet = aw.fleet
    nonce = hashlib.sha256(b"ironroot fuzz admission nonce").digest()
    keys = {p: fixed_key(Algorithm.ES384, f"credential {p}") for p in PLANES}
    csrs = {p: make_csr(k, node=node, plane=p) for p, k in keys.items()}
    spkis = {p: k.public_key.to_der() for p, k in keys.items()}
    evidence = collect_evidence(fleet, node, nonce=nonce, keys=spkis, now=now)
    return AdmissionRequest(node, nonce, evidence.encode(), csrs).encode(), nonce


def _desired(aw: AuditWorld, root: Path, now: dt.datetime) -> tuple[str, bytes, bytes, bytes]:
    """A desired state of the node's class, approved by two fixed-key signers (the
    two-person rule), registered on an operators' log and published (as
    ``tests/fleet/desired_world.py`` does); (class, document, stored v1.cbor,
    governance.json)."""
    from tests.platform.node_world import transparency_service

    from ironroot.fleet import (
        AuthorizedSigner,
        DesiredState,
        DesiredStore,
        Governance,
        sign_desired,
    )
    from ironroot.transparency import ServiceThread, TransparencyClient

    fleet = aw.fleet
    klass = fleet.node_class("node-7")
    signers = {
        "https://ops.example/alice": fixed_key(Algorithm.ES256, "desired alice"),
        "https://ops.example/bob": fixed_key(Algorithm.ES384, "desired bob"),
    }
    service = transparency_service(root / "ops-log", signers)
    with service, ServiceThread(service) as server, TransparencyClient(server.url) as log:
        governance = Governance(
            klass.name,
            tuple(AuthorizedSigner(iss, key.public_key) for iss, key in signers.items()),
            2,
            log.service_keys(),
        )
        store = DesiredStore(fleet)
        store.init(governance)
        state = DesiredState.build(
            klass,
            1,
            policies={"appraisal": b"status == affirming"},
            note="fuzz seed",
            fleet=fleet.identity(),
        )
        approvals = [sign_desired(state, key, iss=iss, iat=now) for iss, key in signers.items()]
        store.publish(klass.name, approvals, now=now, registrar=log)
    directory = store.directory / klass.name
    return (
        klass.name,
        state.encode(),
        (directory / "v1.cbor").read_bytes(),
        (directory / "governance.json").read_bytes(),
    )


@functools.cache
def fleet_seeds() -> FleetSeeds:
    """The world and everything taken from it (module docs); built once per process."""
    from tests.audit.audit_world import NODE, build, install_node_hsm
    from tests.platform.node_world import NOW, make_world

    from ironroot.crypto import load_certificate

    root = scratch() / "fleet-world"
    with make_world(root / "world") as world:
        aw = build(root, world)
        hsm_key = install_node_hsm(aw, NOW)
        trust = aw.trust(hsm_attestation_keys=(hsm_key,))
        bundle = aw.export()
        export = aw.collect()
        request, nonce = _request(aw, NODE, NOW)
        desired = _desired(aw, root, NOW)
        trust_file = aw.write_trust(root / "audit-trust")
    folder = aw.fleet.directory / "nodes" / NODE / "credentials"
    pems = [(folder / f"{plane}.cert.pem").read_bytes() for plane in ("control", "data")]
    der = load_certificate(pems[0]).public_bytes(Encoding.DER)
    return FleetSeeds(
        node=NODE,
        attested=NOW,
        bundle=bundle,
        trust=trust,
        members=dict(export.members),
        export=export,
        fleet=aw.fleet,
        authority=aw.authority,
        request=request,
        request_nonce=nonce,
        credentials=(der, *pems),
        desired_class=desired[0],
        desired_document=desired[1],
        desired_stored=desired[2],
        governance=desired[3],
        trust_file=trust_file,
    )


# --- a log, a witness, a monitor --------------------------------------------------------------

LOG_ORIGIN = "fuzz.example/witnessed-log"
WITNESS_NAME = "witness.fuzz.example/w1"
LOG_URL = "https://log.fuzz.example/"
WITNESS_TIME = 1_780_000_000


class LogFetcher:
    """A log's C2SP read API by path, read from the :class:`~ironroot.log.Log` itself."""

    def __init__(self, log: Log) -> None:
        self.log = log

    def fetch(self, path: str, *, accept: str | None = None) -> bytes:
        from ironroot.log import parse_tile_path

        log = self.log
        if path == "checkpoint":
            return log.checkpoint()
        address = parse_tile_path(path)
        if address.entries:
            return log.read_entry_bundle(address.index, address.width)
        return log.read_tile(address.level, address.index, address.width)


@dataclasses.dataclass(frozen=True)
class LogSeeds:
    """A log grown to ``log.tree_size`` whose checkpoint at ``old_size`` a witness cosigned
    (``stored``) and a monitor verified; the witness's requests and answers; monitor files."""

    log: Log  # signed with a fixed key, started
    verifiers: tuple[NoteVerifier, ...]
    cosigners: tuple[Cosigner, ...]  # the witness's keys: Ed25519, ML-DSA-44
    old_size: int
    stored: StoredCheckpoint  # the witness's, at old_size
    requests: tuple[bytes, ...]
    answers: tuple[bytes, ...]  # the witness app's answers: lines, a 409, problems, /witness
    cosigned: bytes  # the note the witness serves: log signature and cosignatures
    monitor_files: tuple[bytes, ...]

    def witness(self, store: WitnessStore) -> Witness:
        """The seeds' witness of the seeds' log, on ``store``, at the fixed time."""
        from ironroot.witness import WitnessedLog

        return Witness(
            WITNESS_NAME,
            self.cosigners,
            [WitnessedLog(LOG_ORIGIN, self.verifiers)],
            store,
            clock=lambda: WITNESS_TIME,
        )


def _grow(log: Log, items: list[bytes]) -> None:
    for ticket in log.submit_many(items):
        ticket.integrated.result(30)


def _statements(count: int, tag: str) -> list[bytes]:
    from ironroot.cose import create_statement

    vendor = fixed_key(Algorithm.ES256, "log vendor")
    return [
        create_statement(vendor, b"{}", iss="https://vendor.example", sub=f"pkg:fw/{tag}-{i}")
        for i in range(count)
    ]


def _answers(witness: Witness, requests: list[tuple[bytes, str]]) -> tuple[bytes, ...]:
    """What the witness's HTTP app answers ``requests`` (body, Accept) in turn, in process
    (an ASGI transport: no socket), and what it says of itself (``GET /witness``)."""
    import asyncio

    import httpx

    from ironroot.witness import create_witness_app

    async def ask() -> tuple[bytes, ...]:
        transport = httpx.ASGITransport(app=create_witness_app(witness))
        async with httpx.AsyncClient(transport=transport, base_url="http://witness") as client:
            answers = [
                (await client.post("/add-checkpoint", content=body, headers={"Accept": accept}))
                for body, accept in requests
            ]
            answers.append(await client.get("/witness"))
        return tuple(a.content for a in answers)

    return asyncio.run(ask())


def _monitor_file(
    path: Path, steps: list[tuple[Log, str]], keys: tuple[NoteVerifier, ...]
) -> bytes:
    """The monitor's state file after checking each (log, url) of ``steps`` in turn, with
    ``LOG_URL``'s keys pinned."""
    from ironroot.errors import ForkDetected
    from ironroot.monitor import Monitor, MonitorStore, Watch

    store = MonitorStore(path)
    try:
        store.set_pin(LOG_URL, LOG_ORIGIN, tuple(k.vkey for k in keys))
        monitor = Monitor(
            store, watch=Watch(frozenset({"pkg:fw/a-1"}), frozenset()), clock=lambda: WITNESS_TIME
        )
        for log, url in steps:
            with contextlib.suppress(ForkDetected):  # kept in the file: what the seed is for
                Monitor.raise_for(monitor.check(url, LogFetcher(log), keys))
    finally:
        store.close()
    # A file without its instance, as one older than high-water files: a fuzzed copy (which
    # has no high-water file beside it) is then read through, not refused at the door.
    import sqlite3

    db = sqlite3.connect(path)
    db.execute("DELETE FROM meta WHERE key = 'instance'")
    db.commit()
    db.close()
    for suffix in (".verified", ".verified.lock"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    return path.read_bytes()


@functools.cache
def log_seeds() -> LogSeeds:
    """The log, witness and monitor seeds (module docs); built once per process."""
    from ironroot.log import Log, NoteSigner
    from ironroot.witness import AddCheckpoint, Cosigner, MemoryWitnessStore, WitnessedLog

    log_key = fixed_key(Algorithm.ED25519, "log")
    signer = NoteSigner(LOG_ORIGIN, log_key)
    log = Log.open_memory(origin=LOG_ORIGIN, note_signers=[signer])
    log.start()
    forked = Log.open_memory(origin=LOG_ORIGIN, note_signers=[signer])
    forked.start()
    verifiers = tuple(log.note_verifiers)
    cosigners = (
        Cosigner(WITNESS_NAME, fixed_key(Algorithm.ED25519, "witness")),
        Cosigner(WITNESS_NAME, fixed_key(Algorithm.ML_DSA_44, "witness")),
    )
    ticks = iter(range(WITNESS_TIME, WITNESS_TIME + 1_000_000_000))
    witness = Witness(
        WITNESS_NAME,
        cosigners,
        [WitnessedLog(LOG_ORIGIN, verifiers)],
        MemoryWitnessStore(),
        clock=lambda: next(ticks),
    )
    directory = scratch() / "monitor-seeds"
    directory.mkdir()

    first = _statements(3, "a")
    _grow(log, first)
    _grow(forked, first)
    old_size, small = log.tree_size, log.checkpoint()
    witness.add_checkpoint(AddCheckpoint(0, (), small).encode())
    stored = witness.latest(LOG_ORIGIN)
    assert stored is not None
    honest = _monitor_file(directory / "honest.sqlite3", [(log, LOG_URL)], verifiers)

    _grow(log, _statements(5, "b"))
    _grow(forked, _statements(6, "evil"))
    large = log.checkpoint()
    proof = tuple(log.consistency_proof(old_size, log.tree_size))
    requests = (
        AddCheckpoint(old_size, proof, large).encode(),
        AddCheckpoint(0, (), small).encode(),
        AddCheckpoint(old_size, (), small).encode(),
    )
    fresh = Witness(
        WITNESS_NAME,
        cosigners,
        [WitnessedLog(LOG_ORIGIN, verifiers)],
        MemoryWitnessStore(),
        clock=lambda: WITNESS_TIME,
    )
    first = AddCheckpoint(0, (), large).encode()
    forged = AddCheckpoint(0, (), large[:-8] + b"AAAAAAA\n").encode()  # its signature broken
    as_cbor = "application/concise-problem-details+cbor, text/plain"
    as_json = "application/problem+json"
    answers = _answers(
        fresh, [(first, as_cbor), (first, as_cbor), (forged, as_cbor), (forged, as_json)]
    )
    served = fresh.latest(LOG_ORIGIN)
    assert served is not None
    cosigned = served.note  # what the witness serves: the log's signature and its own
    forks = _monitor_file(
        directory / "forked.sqlite3",
        [(log, "https://a.example/"), (forked, "https://b.example/")],
        verifiers,
    )
    return LogSeeds(
        log=log,
        verifiers=verifiers,
        cosigners=cosigners,
        old_size=old_size,
        stored=stored,
        requests=requests,
        answers=answers,
        cosigned=cosigned,
        monitor_files=(honest, forks),
    )


LMS_LOG_ORIGIN = "fuzz.example/lms-log"
LMS_LOG_URL = "https://lms-log.fuzz.example/"


def lms_check() -> EntryCheck:
    """The per-entry check ``ironroot monitor`` runs (``checks=(_LmsLeaves(),)``)."""
    from ironroot.cli.monitor import _LmsLeaves

    return _LmsLeaves()


def _lms_statement(tag: str, leaves: object) -> bytes:
    """A firmware manifest statement (a SHA-384 hash envelope) whose protected header names
    ``leaves`` (``LMS_LEAVES_HEADER``); signed with a fixed key."""
    from ironroot.cose import HASH_SHA384, create_statement
    from ironroot.firmware import LMS_LEAVES_HEADER, MANIFEST_CONTENT_TYPE

    return create_statement(
        fixed_key(Algorithm.ES256, "lms vendor"),
        f"manifest {tag}".encode(),
        iss="https://vendor.example",
        sub=f"pkg:firmware/{tag}",
        hash_envelope=True,
        hash_alg=HASH_SHA384,
        preimage_content_type=MANIFEST_CONTENT_TYPE,
        headers={LMS_LEAVES_HEADER: leaves},
    )


def _leaf(key: str, leaf: int, signature: str, role: str = "vendor") -> dict[str, object]:
    def digest(text: str) -> bytes:
        return hashlib.sha384(text.encode()).digest()

    return {
        "role": role,
        "key-hash": digest(key),
        "leaf": leaf,
        "message": digest(f"{key}/{leaf}/{signature}/message"),
        "signature-hash": digest(signature),
    }


@dataclasses.dataclass(frozen=True)
class MonitorCheckSeeds:
    """A log of LMS-leaf statements grown since ``files`` were written (the state and
    high-water files of a monitor that checked it at a smaller size, as CBOR maps)."""

    log: Log
    verifiers: tuple[NoteVerifier, ...]
    files: tuple[bytes, ...]


@functools.cache
def monitor_check_seeds() -> MonitorCheckSeeds:
    """The LMS-checked monitor seeds (module docs); built once per process."""
    import sqlite3

    import cbor2

    from ironroot.log import Log, NoteSigner
    from ironroot.monitor import Monitor, MonitorStore

    signer = NoteSigner(LMS_LOG_ORIGIN, fixed_key(Algorithm.ED25519, "lms log"))
    log = Log.open_memory(origin=LMS_LOG_ORIGIN, note_signers=[signer])
    log.start()
    verifiers = tuple(log.note_verifiers)
    first = _lms_statement("a", [_leaf("k1", 0, "s1"), _leaf("k2", 7, "s2", "owner")])
    again = _lms_statement("a-again", [_leaf("k1", 0, "s1")])  # one use: the same signature
    _grow(log, [first, _lms_statement("b", [_leaf("k1", 1, "s3")]), again])
    _grow(log, _statements(1, "plain"))
    _grow(log, [_lms_statement("c", [_leaf("k1", 1, "s4")])])  # leaf 1 again: an alarm
    directory = scratch() / "monitor-check-seeds"
    directory.mkdir()
    files = []
    for name, pinned in (("pinned", True), ("unpinned", False)):
        path = directory / f"{name}.sqlite3"
        store = MonitorStore(path)
        try:
            if pinned:
                store.set_pin(LMS_LOG_URL, LMS_LOG_ORIGIN, tuple(k.vkey for k in verifiers))
            monitor = Monitor(store, checks=(lms_check(),), clock=lambda: WITNESS_TIME)
            events = monitor.check(LMS_LOG_URL, LogFetcher(log), verifiers)
            assert [e.kind for e in events].count("lms-leaf-reused") == 1, events
        finally:
            store.close()
        files.append(
            cbor2.dumps(
                {"state": path.read_bytes(), "verified": Path(f"{path}.verified").read_bytes()}
            )
        )
    # The rows themselves, as CBOR (so a mutation retypes one value), written into a file
    # without its instance or high-water file (one older than them): read, not refused at
    # the door.
    path = directory / "pinned.sqlite3"
    db = sqlite3.connect(path)
    rows = [list(row) for row in db.execute("SELECT * FROM key_uses")]
    water = Path(f"{path}.verified").read_bytes()
    files.append(cbor2.dumps({"state": path.read_bytes(), "verified": water, "rows": rows}))
    db.execute("DELETE FROM meta WHERE key = 'instance'")
    db.commit()
    db.close()
    files.append(cbor2.dumps({"state": path.read_bytes(), "rows": rows}))
    _grow(
        log,
        [
            _lms_statement("d", [_leaf("k2", 7, "s5", "owner")]),  # reuses a stored leaf
            _lms_statement("a-third", [_leaf("k1", 0, "s1")]),  # a use seen before
            _lms_statement("e", "not a list"),  # lms-leaf-malformed
            _lms_statement("f", [_leaf("k3", 2**32 - 1, "s6")]),
        ],
    )
    return MonitorCheckSeeds(log=log, verifiers=verifiers, files=tuple(files))


@functools.cache
def witness_state_seeds() -> tuple[bytes, ...]:
    """The witness's state files (module docs); built once per process."""
    from ironroot.errors import ForkDetected, InconsistentCheckpoint
    from ironroot.log import Log, NoteSigner
    from ironroot.witness import AddCheckpoint, SqliteWitnessStore

    seeds = log_seeds()
    forked = Log.open_memory(
        origin=LOG_ORIGIN,
        note_signers=[NoteSigner(LOG_ORIGIN, fixed_key(Algorithm.ED25519, "log"))],
    )
    forked.start()
    _grow(forked, _statements(seeds.old_size, "other"))
    grow, first, _ = seeds.requests  # from old_size to the grown log; from 0 to old_size
    garbled = AddCheckpoint.parse(grow)
    garbled = AddCheckpoint(garbled.old_size, (b"\x07" * 32,) * 3, garbled.checkpoint)
    files = []
    for name, requests in (
        ("small", [first]),
        ("grown", [first, grow]),
    ):
        path = scratch() / "witness-seeds" / f"{name}.sqlite3"
        path.parent.mkdir(exist_ok=True)
        store = SqliteWitnessStore(path)
        witness = seeds.witness(store)
        try:
            witness.add_checkpoint(requests[0])
            with contextlib.suppress(InconsistentCheckpoint):
                witness.add_checkpoint(garbled.encode())
            with contextlib.suppress(ForkDetected):
                witness.add_checkpoint(
                    AddCheckpoint(seeds.old_size, (), forked.checkpoint()).encode()
                )
            for request in requests[1:]:
                witness.add_checkpoint(request)
            assert {e.kind for e in witness.evidence()} == {"fork", "inconsistent"}
        finally:
            witness.close()
        # A file without its instance, as one older than high-water files: a fuzzed copy
        # (which has no high-water file beside it) is then read through, not refused.
        import sqlite3

        db = sqlite3.connect(path)
        db.execute("DELETE FROM meta WHERE key = 'instance'")
        db.commit()
        db.close()
        for suffix in (".cosigned", ".cosigned.lock"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        files.append(path.read_bytes())
    return tuple(files)
