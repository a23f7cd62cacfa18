"""Admission (the Azure Boost rule): a node reaches the control plane only with an affirming
EAR for fresh evidence that binds the key of its credential; and quarantine, which takes it
away at once.

:class:`AdmissionAuthority` is the fleet's admission service, kept in ``<fleet>/admission/``::

    config.json          the credential lifetime (default 3,600 s)
    ca.key.pem           the fleet CA key (mode 0600) and ca.cert.pem its certificate
    verifier.key.pem     the verifier's EAR signing key, ES384 (mode 0600); verifier.pub.pem
    vendor-roots.pem     the vendor CA certificates RoT quotes must chain to
    endorsements/        transparent statements added to the classes' (newer reference values,
                         SAFE reviews): <sha256>.ts

and in the fleet's ``fleet.db``, beside the registry (one SQLite file, so that one admission
is one transaction, one commit): every credential issued and its revocation
(``credentials``), operator holds and VM placements (``holds``, ``placements``), and the EARs
with the evidence each appraised (``ears``: each node's latest, the one its registry row
names and those its newest credential of each plane was issued on; audit exports read them
through :func:`ironroot.fleet.latest_attestation` and
:func:`ironroot.fleet.stored_attestation`). Fleets
made before kept the first two in ``admission/credentials.db`` and ``admission/admission.db``:
their rows are imported once; and the latest EAR and its evidence in ``admission/ears/``
files, which are still read for a node with no EAR in ``fleet.db``. The code of those tables
(holds, placements, EARs, the import, and :func:`unusable_credentials`) is in
:mod:`ironroot.fleet._admission_state`, which a reader of the registry (``fleet status``)
imports without the verifier.

One admission (:meth:`AdmissionAuthority.admit`), in order:

1. the nonce is one this authority issued, unexpired and unused (``StaleNonce``
   ``nonce-unknown``, ``nonce-expired``, ``nonce-reused``: a replayed request is refused),
   and it was issued to the node the request names (``nonce-node``: a challenge names its
   node, and no other node's answer redeems it) after the node's latest quarantine
   (``nonce-superseded``: an answer collected before a quarantine does not undo it; checked
   again in the commit of step 7);
2. each CSR (one per plane asked: ``control``,
   ``data``) parses and its self-signature verifies (``MalformedCertificate``,
   ``BadSignature``), its key ECDSA P-384 (``UnsupportedAlgorithm``) and no other plane's
   (``PolicyRejected`` ``plane-key-shared``: a control-plane credential must not hold the
   data-plane key, whose certificate is no secret), and no key of a credential that was
   revoked (``PolicyRejected`` ``key-revoked``: a quarantine may have been for that key),
   nor one a credential issued before certified for another plane (``plane-key-shared``;
   both checked again in the commit of step 7, against an admission of the node at once and
   a quarantine, of any node, that revoked a credential of the key meanwhile);
3. the evidence parses and is for this node (``MalformedEvidence``). A node id the registry
   does not hold is refused here, as evidence that is not the node's RoT's answer
   (:meth:`ironroot.fleet.FleetVerifier.refuse_unregistered`: ``ChainNotTrusted``
   ``node-identity``, or the quote's own verification error), nothing recorded but a warning
   in the log: the challenge is issued for any node id (:meth:`AdmissionAuthority.challenge`),
   so neither step tells an anonymous client which node ids exist;
4. the verifier appraises it (:mod:`ironroot.fleet._verifier`: the class's desired PFM
   included; ``StorageError`` ``pfm-policy-unavailable`` when the class's desired state in
   force cannot be read, the node's status unchanged) and signs an EAR, stored as the node's
   latest; when the RoT quote itself does not verify — another nonce (``StaleNonce``),
   keys other than the CSRs' (``KeyBindingMismatch``), another device, a bad signature — the
   request is refused with that error and the node's status does not change: evidence that is
   not the node's answer to this challenge says nothing about the node (and anyone can send
   it). An ``admission-refused`` event records it in bounded space: refusals of the node for
   one reason (the error's code) within an hour (:data:`REFUSED_WINDOW`) are one event, with
   their ``count``, ``first_at`` and the latest refusal's detail and time, and a node keeps
   its latest :data:`REFUSED_KEPT` such events (:meth:`ironroot.fleet.Fleet.record_repeated`);
5. an EAR that is not affirming **quarantines** the node (below) with its reasons, and the
   request fails with ``AdmissionDenied`` ``admission-denied``;
6. a node an operator holds in quarantine stays there (``AdmissionDenied`` ``node-held``)
   until :func:`readmit`, its attestation's time kept as its ``last_attested`` (the scanner
   attests it once a period);
7. a credential per plane is issued (:class:`ironroot.fleet.FleetCA`; profile in
   ``docs/fleet.md``) naming the node, its class, the plane and the EAR id, valid for the
   credential lifetime; the registry row becomes ``admitted`` with the control-plane
   credential's serial and expiry, the EAR id and the attestation time.

:func:`quarantine` (the hook the scanner and operators use) sets the registry status first —
every control- and data-plane request checks it, so the node's credentials are refused from
that moment — then revokes every unexpired credential of the node, stops its VM placements
and records the effects as an event. ``hold=True`` (an operator's quarantine) also keeps a
fresh, affirming attestation from readmitting it until :func:`readmit`. Recovery otherwise
needs nothing but an affirming attestation: the node is readmitted.

:func:`node_may_receive_keys` is the check the fleet's key release runs before releasing a key
to a VM on a node: the node is admitted and its attestation current (``ReleaseDenied``
``node-not-admitted``, ``attestation-expired``).

:func:`attest_node` plays both sides in one process (the node: its keys, CSRs and evidence;
the authority: the admission), storing the node's credentials in
``<fleet>/nodes/<id>/credentials/``, its keys sealed to its root of trust
(:func:`ironroot.fleet.store_node_credentials`). :func:`scan_attest` adapts it to
:class:`ironroot.fleet.Scanner`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import os
import re
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final

from cryptography.hazmat.primitives.serialization import Encoding

from ironroot._fileio import make_dirs, read_limited, write_atomic
from ironroot.cose import (
    Limits,
    TransparentStatement,
    decode_cbor,
    encode_cbor,
    verify_transparent_statement,
)
from ironroot.crypto import (
    Algorithm,
    PrivateKey,
    load_certificate,
    load_certificates,
    load_crls,
    load_signer,
    save_signer,
)
from ironroot.ear import NonceStore
from ironroot.errors import (
    AdmissionDenied,
    ConfigError,
    Conflict,
    DeviceStateTampered,
    IronrootError,
    MalformedEvidence,
    MalformedInput,
    NotFound,
    PolicyRejected,
    ReleaseDenied,
    StaleNonce,
    StorageError,
    UnknownIssuer,
)
from ironroot.fleet._admission_state import (
    ADMISSION_DIR,
    Placement,
    _directory,
    _stores,
    _text,
    unusable_credentials,
)
from ironroot.fleet._credentials import (
    DEFAULT_LIFETIME,
    PLANES,
    Credential,
    FleetCA,
    OperatorCredential,
    _csr_key,
    check_lifetime,
    key_digest,
    make_csr,
    operator_holder,
    store_node_credentials,
)
from ironroot.fleet._desired import DesiredStore
from ironroot.fleet._evidence import NodeEvidence, collect_evidence
from ironroot.fleet._fleet import Fleet, NodeRecord, is_node_id
from ironroot.fleet._reconcile import DriftItem, revocation_items
from ironroot.fleet._revocation import CRL_CONTENT_TYPE, file_recorded
from ironroot.fleet._verifier import FleetVerifier, NodeAppraisal
from ironroot.platform import unwrap_witnessed
from ironroot.rot import parse_certificate

__all__ = [
    "ADMISSION_DIR",
    "AdmissionAuthority",
    "AdmissionRequest",
    "AdmissionResult",
    "Placement",
    "attest_node",
    "node_may_receive_keys",
    "quarantine",
    "readmit",
    "scan_attest",
    "unusable_credentials",
]

_log = logging.getLogger("ironroot.fleet")

NONCE_LIFETIME: Final = 120
_FORMAT: Final = 1
_MAX_REQUEST: Final = 2 * 1024 * 1024
_MAX_ENDORSEMENT: Final = 4 * 1024 * 1024
_REQUEST_LIMITS: Final = Limits(max_bytes=_MAX_REQUEST, max_depth=4, max_items=16)
_VM: Final = re.compile(r"[a-z0-9][a-z0-9-]{0,63}")
_QUARANTINED: Final = "quarantined"  # the event a quarantine records (Fleet.set_status)
_MAX_REASON: Final = 2000
REFUSED_WINDOW: Final = 3600
"""Seconds during which refused admissions of a node for one reason fold into one event."""
REFUSED_KEPT: Final = 100
"""The ``admission-refused`` events a node keeps (the latest)."""


# --- requests and results -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AdmissionRequest:
    """What a node sends: its id, the nonce it answers, its evidence
    (:class:`ironroot.fleet.NodeEvidence` bytes) and a CSR (DER or PEM) for each plane —
    both: one attestation issues both planes' credentials, and a request for one plane is
    ``MalformedInput`` (the registry's credential fields are the control plane's).

    Over HTTP it is deterministic CBOR ``{"node": tstr, "nonce": bstr, "evidence": bstr,
    "csrs": {plane: bstr}}``."""

    node: str
    nonce: bytes = field(repr=False)
    evidence: bytes = field(repr=False)
    csrs: Mapping[str, bytes] = field(repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.node, str) or not 1 <= len(self.node) <= 64:
            raise MalformedInput("an admission request names its node")
        if not isinstance(self.nonce, bytes) or not isinstance(self.evidence, bytes):
            raise MalformedInput("an admission request's nonce and evidence are bytes")
        csrs = dict(self.csrs)
        if set(csrs) != set(PLANES):  # one attestation, both planes' credentials
            raise MalformedInput(f"an admission request has a CSR per plane ({', '.join(PLANES)})")
        if not all(isinstance(c, bytes) for c in csrs.values()):
            raise MalformedInput("a CSR is bytes")
        object.__setattr__(self, "csrs", MappingProxyType(csrs))

    def encode(self) -> bytes:
        return encode_cbor(
            {
                "node": self.node,
                "nonce": self.nonce,
                "evidence": self.evidence,
                "csrs": dict(self.csrs),
            }
        )

    @classmethod
    def decode(cls, data: bytes) -> AdmissionRequest:
        if len(data) > _MAX_REQUEST:
            raise MalformedInput(f"an admission request is at most {_MAX_REQUEST} bytes")
        doc = decode_cbor(data, _REQUEST_LIMITS)
        if not isinstance(doc, dict) or set(doc) != {"node", "nonce", "evidence", "csrs"}:
            raise MalformedInput("an admission request is {node, nonce, evidence, csrs}")
        csrs = doc["csrs"]
        if not isinstance(csrs, dict):
            raise MalformedInput("an admission request's csrs are a map of plane to CSR")
        return cls(doc["node"], doc["nonce"], doc["evidence"], csrs)


@dataclass(frozen=True, slots=True)
class AdmissionResult:
    """An admission: the appraisal (with the signed EAR) and a credential per plane.

    Over HTTP, deterministic CBOR ``{"node", "status", "ear": tstr (the JWT), "ear_id",
    "credentials": {plane: bstr (DER)}, "ca": bstr (DER)}``."""

    node: str
    status: str
    appraisal: NodeAppraisal
    credentials: Mapping[str, Credential]
    ca: bytes = field(repr=False)

    @property
    def ear_id(self) -> str:
        return self.appraisal.ear_id

    def encode(self) -> bytes:
        return encode_cbor(
            {
                "node": self.node,
                "status": self.status,
                "ear": self.appraisal.token.decode("ascii"),
                "ear_id": self.ear_id,
                "credentials": {p: c.der for p, c in self.credentials.items()},
                "ca": self.ca,
            }
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "node": self.node,
            "status": self.status,
            "ear_id": self.ear_id,
            "ear_status": self.appraisal.status.value,
            "credentials": {p: c.to_json() for p, c in self.credentials.items()},
        }


# --- quarantine -----------------------------------------------------------------------------


def _quarantine(
    fleet: Fleet,
    node_id: str,
    reason: str,
    *,
    evidence: Mapping[str, Any] | None,
    now: dt.datetime,
    hold: bool = False,
    ear: NodeAppraisal | None = None,
    submitted: bytes | None = None,
    **fields: str | None,
) -> NodeRecord:
    reason = reason[:_MAX_REASON]
    stores = _stores(fleet)
    with fleet.transaction():  # one commit: status, revocations, placements, hold, EAR, events
        if ear is not None and stores is not None:
            stores[0].store_ear(node_id, ear.ear_id, ear.token, now, submitted)
        record = fleet.set_status(
            node_id,
            "quarantined",
            reason,
            now=now,
            evidence=evidence,
            credential_serial=None,
            credential_not_after=None,
            **fields,
        )
        revoked = stores[1].revoke_node(node_id, reason, now=now) if stores is not None else []
        stopped = stores[0].stop_node(node_id, reason, now) if stores is not None else []
        if hold and stores is not None:
            stores[0].hold(node_id, reason, now)
        fleet.record(
            node_id,
            "quarantine-effects",
            {"revoked": revoked, "placements_stopped": stopped, "held": hold},
            now=now,
        )
    return record


def _issued(bound: object) -> tuple[str, int]:
    """The node a challenge was issued to and its latest quarantine then
    (:meth:`AdmissionAuthority.challenge`)."""
    if (
        not isinstance(bound, tuple)
        or len(bound) != 2
        or not isinstance(bound[0], str)
        or not isinstance(bound[1], int)
    ):
        raise StaleNonce("this challenge was issued to no node: ask for one", code="nonce-node")
    return bound[0], bound[1]


def _held(node_id: str, held: str) -> AdmissionDenied:
    return AdmissionDenied(
        f"{node_id} is held in quarantine by an operator ({held}): readmit it", code="node-held"
    )


def quarantine(
    fleet: Fleet,
    node_id: str,
    reason: str,
    *,
    evidence: Mapping[str, Any] | None = None,
    now: dt.datetime,
    hold: bool = True,
) -> NodeRecord:
    """Quarantine a node: registry status (refused at once on both planes), its credentials
    revoked, its VM placements stopped, key release refused; an event records why, with
    ``evidence``. ``hold`` (an operator's quarantine; the default) keeps even an affirming
    attestation from readmitting it until :func:`readmit`."""
    if not isinstance(reason, str) or not reason.strip():
        raise ConfigError("a quarantine gives its reason")
    fleet.record_of(node_id)
    return _quarantine(fleet, node_id, reason.strip(), evidence=evidence, now=now, hold=hold)


def node_may_receive_keys(fleet: Fleet, node_id: str, *, now: dt.datetime) -> None:
    """Whether key release may release a key to a VM on ``node_id``: the node is admitted and
    its credential (its attestation) current; ``ReleaseDenied`` otherwise."""
    record = fleet.record_of(node_id)
    if record.status != "admitted":
        raise ReleaseDenied(
            f"{node_id} is {record.status} ({record.reason}): no key is released to its VMs",
            code="node-not-admitted",
        )
    if not _attestation_current(record, now):
        raise ReleaseDenied(
            f"{node_id}'s attestation is not current (credential until "
            f"{record.credential_not_after}): attest again",
            code="attestation-expired",
        )


def _attestation_current(record: NodeRecord, now: dt.datetime) -> bool:
    """Whether ``record``'s attestation is current at ``now``: its control-plane credential
    (issued on it, renewed by each attestation) has not expired."""
    until = record.credential_not_after
    return until is not None and now < dt.datetime.fromisoformat(until.replace("Z", "+00:00"))


# --- the authority --------------------------------------------------------------------------


def _roots_pem(roots: Sequence[bytes]) -> bytes:

    pems = [
        load_certificate(parse_certificate(r).der, der_only=True).public_bytes(Encoding.PEM)
        for r in roots
    ]
    return b"".join(pems)


CRL_REUSE: Final = 300
"""Seconds the fleet CA's last CRL is answered again while no credential was revoked since
(:meth:`AdmissionAuthority.crl`)."""


class AdmissionAuthority:
    """The fleet's admission service (module docs)."""

    def __init__(
        self,
        fleet: Fleet,
        *,
        ca: FleetCA,
        verifier_key: PrivateKey,
        vendor_roots: Sequence[bytes],
        credential_lifetime: int,
    ) -> None:
        self.fleet = fleet
        self.directory = _directory(fleet)
        self.ca = ca
        self.credential_lifetime = check_lifetime(credential_lifetime)
        self.verifier_key = verifier_key.public_key
        stores = _stores(fleet)
        if stores is None:
            raise NotFound(f"admission is not set up in {fleet.directory}")
        self.state, self.credentials = stores
        self.nonces = NonceStore(lifetime=NONCE_LIFETIME, service="fleet admission")
        self._crl: tuple[tuple[tuple[str, dt.datetime], ...], dt.datetime, bytes] | None = None
        self._crl_lock = threading.Lock()
        self.verifier = FleetVerifier(
            fleet,
            vendor_roots=vendor_roots,
            signer=verifier_key,
            lifetime=self.credential_lifetime,
            added_token=self._endorsement_token,
            added=self.endorsements,
        )

    def __repr__(self) -> str:
        return f"AdmissionAuthority({str(self.directory)!r})"

    # --- setting up -------------------------------------------------------------------------

    @classmethod
    def init(
        cls,
        fleet: Fleet,
        *,
        vendor_roots: Sequence[bytes],
        now: dt.datetime,
        credential_lifetime: int = DEFAULT_LIFETIME,
    ) -> AdmissionAuthority:
        """Set up admission for ``fleet``: the fleet CA, the verifier key, the trusted vendor
        roots (PEM or DER certificates); ``Conflict`` when it is set up already. A set-up cut
        short (its ``config.json``, written last, missing) is finished: the keys it wrote are
        kept."""
        directory = _directory(fleet)
        if (directory / "config.json").exists():
            raise Conflict(f"admission is set up in {directory} already")
        if not vendor_roots:
            raise ConfigError("admission needs the vendor CA roots RoT quotes chain to")
        check_lifetime(credential_lifetime)
        pem = _roots_pem(vendor_roots)
        make_dirs(directory / "endorsements")
        # config.json is written last, and nothing opens admission without it: the keys of a
        # set-up cut short before it (a crash) were never used, and are kept and used now.
        ca = FleetCA.create(directory, now=now, resume=True)
        verifier = directory / "verifier.key.pem"
        if verifier.exists():
            kept = load_signer(verifier)
            if not isinstance(kept, PrivateKey):
                raise StorageError("the verifier key is not an ECDSA key")
            key = kept
        else:
            key = PrivateKey.generate(Algorithm.ES384)
            save_signer(key, verifier)
        write_atomic(directory / "verifier.pub.pem", key.public_key.to_pem(), mode=0o644)
        write_atomic(directory / "vendor-roots.pem", pem, mode=0o644)
        # The event before config.json, which puts admission in force: never in force without
        # it. A set-up cut short after the event records it once (its CA is the one kept).
        subject = ca.certificate.subject.rfc4514_string()
        if not any(
            e.detail.get("ca") == subject for e in fleet.events(kind="admission-initialized")
        ):
            fleet.record(None, "admission-initialized", {"ca": subject}, now=now)
        config = {"format": _FORMAT, "credential_lifetime": credential_lifetime}
        write_atomic(directory / "config.json", json.dumps(config).encode(), mode=0o644)
        return cls(
            fleet,
            ca=ca,
            verifier_key=key,
            vendor_roots=[parse_certificate(r).der for r in vendor_roots],
            credential_lifetime=credential_lifetime,
        )

    @classmethod
    def open(cls, fleet: Fleet, *, credential_lifetime: int | None = None) -> AdmissionAuthority:
        """The fleet's admission (``NotFound`` before :meth:`init`; ``StorageError`` for a
        ``config.json`` that is not its configuration); ``credential_lifetime`` overrides the
        configured one (``ConfigError`` outside 60 s to 7 days, 0 included)."""
        directory = _directory(fleet)
        try:
            config = json.loads(read_limited(directory / "config.json", 64 * 1024))
        except FileNotFoundError as exc:
            raise NotFound(
                f"admission is not set up in {fleet.directory}: run `ironroot fleet attest "
                "--vendor-root CERT`"
            ) from exc
        except (ValueError, RecursionError) as exc:
            raise StorageError(f"{directory}/config.json is not JSON") from exc
        if not isinstance(config, dict) or config.get("format") != _FORMAT:
            raise StorageError(f"{directory}/config.json is not an admission configuration")
        configured = config.get("credential_lifetime")
        if isinstance(configured, bool) or not isinstance(configured, int):
            raise StorageError(
                f"{directory}/config.json has no credential_lifetime (a whole number of seconds)"
            )
        key = load_signer(directory / "verifier.key.pem")
        if not isinstance(key, PrivateKey):
            raise StorageError("the verifier key is not an ECDSA key")

        roots = [
            c.public_bytes(Encoding.DER)
            for c in load_certificates(
                read_limited(directory / "vendor-roots.pem", 1024 * 1024), what="vendor root"
            )
        ]
        return cls(
            fleet,
            ca=FleetCA.open(directory),
            verifier_key=key,
            vendor_roots=roots,
            credential_lifetime=configured if credential_lifetime is None else credential_lifetime,
        )

    # --- endorsements -----------------------------------------------------------------------

    def _endorsement_token(self) -> object:
        """The names of the added endorsements (what :meth:`endorsements` reads), listed
        once: every appraisal asks."""
        try:
            with os.scandir(self.directory / "endorsements") as entries:
                return tuple(sorted(e.name for e in entries if e.name.endswith(".ts")))
        except (FileNotFoundError, NotADirectoryError):
            return ()

    def endorsements(self) -> list[tuple[str, bytes]]:
        """The added endorsement statements, labelled with their file names."""
        folder = self.directory / "endorsements"
        return [
            (f"endorsement {p.name}", read_limited(p, _MAX_ENDORSEMENT))
            for p in sorted(folder.glob("*.ts"))
        ]

    def add_endorsement(self, data: bytes, *, now: dt.datetime) -> str:
        """Add a transparent statement (a reference-value CoRIM, a SAFE review) to what every
        class is appraised against. It must be a transparent statement (``MalformedStatement``)
        whose receipts verify under the transparency-service keys of some node class, name
        its ``service_issuer`` when the class's trust gives one, and are not issued after
        ``now`` (``UnknownIssuer`` ``untrusted-service`` otherwise, naming the last refusal);
        whether it counts for a class is decided at appraisal, under that class's trust. Of a
        witnessed statement (what a class whose platform requires witnesses is given) the
        Transparent Statement in it is added, as the fleet's verifier reads a class's own. A
        revocation statement's CRL must parse (``MalformedCertificate``). Returns its file
        name. Its ``endorsement-added`` event follows the file, and is recorded by the next add
        of the same statement when a crash came between the two."""
        if not isinstance(data, bytes) or len(data) > _MAX_ENDORSEMENT:
            raise MalformedInput(f"an endorsement is at most {_MAX_ENDORSEMENT} bytes")
        data = unwrap_witnessed(data)
        parsed = TransparentStatement.parse(data)  # MalformedStatement: not one
        if parsed.statement.content_type == CRL_CONTENT_TYPE:  # its CRL must be one
            load_crls(parsed.statement.payload or b"", what="the CRL of the revocation statement")
        last: IronrootError | None = None
        for name in self.fleet.classes():
            try:
                trust = self.fleet.node_class(name).trust
                verify_transparent_statement(
                    data, trust.service_keys, issuer=trust.service_issuer, now=now.timestamp()
                )
                break
            except IronrootError as exc:
                last = exc
        else:
            raise UnknownIssuer(
                "the statement's receipts verify under no node class's transparency services"
                + (f" ({last.detail})" if last is not None else ""),
                code="untrusted-service",
            )
        name = hashlib.sha256(data).hexdigest() + ".ts"
        path = self.directory / "endorsements" / name
        # The file lands, then its event: a file there with no event is an add a crash cut
        # short between the two (in force, unrecorded), which this one finishes.
        if path.exists() and file_recorded(self.fleet, "endorsement-added", name):
            return name
        write_atomic(path, data, mode=0o644)
        self.fleet.record(None, "endorsement-added", {"file": name}, now=now)
        return name

    # --- admission --------------------------------------------------------------------------

    def challenge(
        self, now: dt.datetime, client: str | None = None, *, node: str
    ) -> tuple[bytes, int]:
        """A fresh single-use nonce (32 bytes) for ``node`` and when it expires (epoch
        seconds); only ``node``'s admission may redeem it. Any ``node`` of the node-id syntax
        gets one, registered or not (``MalformedInput`` otherwise, for the syntax alone): the
        route is anonymous, and a different answer for an unknown id would tell anyone which
        node ids exist. An unknown node is refused at :meth:`admit`, as a registered node is
        when its evidence is not its RoT's; the server's log names it."""
        if not isinstance(node, str) or not is_node_id(node):
            raise MalformedInput("a node id is 1-64 of A-Z a-z 0-9 . _ -, starting alphanumeric")
        # What the answer must not predate: the node's latest quarantine when it was asked.
        record, quarantined = self.fleet._record_and_last_event(node, _QUARANTINED)
        if record is None:
            _log.info(
                "a challenge was asked (client %s) for node %r, which is not in the fleet: "
                "its admission will be refused",
                client,
                node,
            )
        return self.nonces.issue(now, client, bound=(node, quarantined))

    def _store_ear(self, appraisal: NodeAppraisal, evidence: bytes, now: dt.datetime) -> None:
        self.state.store_ear(appraisal.node, appraisal.ear_id, appraisal.token, now, evidence)

    def _refuse_held(
        self,
        appraisal: NodeAppraisal,
        evidence: bytes,
        held: str,
        now: dt.datetime,
    ) -> None:
        """Keep the EAR of an admission refused for an operator's hold, its event and its
        time as the node's last attestation (in the caller's transaction): the scanner
        attests a held node once a period, not at every round."""
        self._store_ear(appraisal, evidence, now)
        self.fleet.note_attested(appraisal.node, now=now)
        detail = {**appraisal.to_json(), "hold": held}
        self.fleet.record(appraisal.node, "admission-held", detail, now=now)

    def _check_current(self, node_id: str, quarantined: int, latest: int | None = None) -> None:
        """Refuse an answer to a challenge issued before the node's latest quarantine
        (``quarantined``: the latest the node had when the challenge was issued; ``latest``:
        its latest now, when the caller has just read it): evidence from before a quarantine
        says nothing of the node since, and must not undo it."""
        if latest is None:
            latest = self.fleet.last_event(node_id, _QUARANTINED)
        if latest > quarantined:
            raise StaleNonce(
                f"{node_id} was quarantined after this challenge was issued: an answer older "
                "than the quarantine does not readmit it; ask for a new challenge",
                code="nonce-superseded",
            )

    def _check_keys(self, keys: Mapping[str, bytes], *, planes_first: bool = False) -> None:
        """Refuse a key (plane → SubjectPublicKeyInfo) that a revoked credential certified,
        whichever node it was issued to (``key-revoked``: a quarantine may have been for that
        key), and one that a credential issued before certified for another plane
        (``plane-key-shared``: each plane its own key across admissions too, or the holder of
        a data-plane key would hold a control-plane credential for it); the first named
        first (``planes_first``: the second). Both read in one statement."""
        revoked, crossed = self.credentials._key_refusals(keys)
        refusals = [
            (
                revoked,
                f"a key requested was certified by credential {revoked}, which was revoked: "
                "a revoked credential's key is never certified again; make new keys",
                "key-revoked",
            ),
            (
                crossed,
                f"a key requested was certified for another plane by credential {crossed}: "
                "each plane needs its own key, in every admission; make new keys",
                "plane-key-shared",
            ),
        ]
        for serial, detail, code in reversed(refusals) if planes_first else refusals:
            if serial is not None:
                raise PolicyRejected(detail, code=code)

    def ear(self, node_id: str) -> bytes:
        """The node's latest EAR (JWT bytes)."""
        self.fleet.record_of(node_id)
        found = self.state.latest_ear(node_id)
        if found is None:
            raise NotFound(f"{node_id} has not been attested")
        return found

    def ear_by_id(self, ear_id: str) -> bytes:
        """The EAR ``ear_id`` (JWT bytes), while it is a node's latest, the one its registry
        row names or one its newest credential of a plane was issued on."""
        found = self.state.ear(ear_id)
        if found is None:
            raise NotFound(f"no EAR {ear_id} is kept")
        return found

    def admit(self, request: AdmissionRequest, *, now: dt.datetime) -> AdmissionResult:
        """One admission (module docs, in order)."""
        issued_to, quarantined = _issued(self.nonces.redeem(request.nonce, now))
        if issued_to != request.node:
            raise StaleNonce(
                f"this challenge was issued to {issued_to}, not {request.node}: ask for one",
                code="nonce-node",
            )
        # An unknown node is refused only once its request is checked as a registered node's
        # is, and then as one whose evidence is not its RoT's (no node-id oracle: challenge).
        record, latest = self.fleet._record_and_last_event(request.node, _QUARANTINED)
        self._check_current(request.node, quarantined, latest)
        # each key parsed once: its encoding is what the checks and the store name it by,
        # the key itself what the CA certifies (the certificate encodes it as to_der does)
        public = {plane: _csr_key(csr) for plane, csr in request.csrs.items()}
        keys = {plane: key.to_der() for plane, key in public.items()}
        if len(set(keys.values())) != len(keys):
            raise PolicyRejected(
                "the credential requests of two planes carry one key: each plane needs its "
                "own (a control-plane credential would hold the data-plane key)",
                code="plane-key-shared",
            )
        self._check_keys(keys)
        evidence = NodeEvidence.decode(request.evidence)
        if evidence.node != request.node:
            raise MalformedEvidence(
                f"the evidence is for {evidence.node}, not {request.node}", code="evidence-node"
            )
        if record is None:
            refused = self.verifier.refuse_unregistered(
                request.node, evidence, nonce=request.nonce, keys=keys, now=now
            )
            _log.warning(
                "admission refused: node %r is not in the fleet (answered as %s: %s)",
                request.node,
                refused.code,
                refused.detail,
            )
            raise refused
        appraisal = self.verifier._appraise(
            record, evidence, nonce=request.nonce, keys=keys, now=now
        )
        if appraisal.error is not None:
            detail = appraisal.to_json()
            with self.fleet.transaction():
                self._store_ear(appraisal, request.evidence, now)
                # anyone can send such evidence, again and again: a run of refusals for one
                # reason is one event with a count, and a node keeps the latest few
                self.fleet.record_repeated(
                    request.node,
                    "admission-refused",
                    detail,
                    same="error",
                    now=now,
                    window=REFUSED_WINDOW,
                    keep=REFUSED_KEPT,
                )
            raise appraisal.error
        stamp = _text(now)
        if not appraisal.affirming:
            reasons = "; ".join(appraisal.reasons) or "no claim affirmed"
            _quarantine(
                self.fleet,
                request.node,
                f"attestation {appraisal.status.value}: {reasons}",
                evidence=appraisal.to_json(),
                now=now,
                ear=appraisal,
                submitted=request.evidence,
                ear_id=appraisal.ear_id,
                last_attested=stamp,
            )
            raise AdmissionDenied(
                f"{request.node} is quarantined: its attestation is {appraisal.status.value} "
                f"({reasons}; EAR {appraisal.ear_id})",
                code="admission-denied",
            )
        held = self.state.held(request.node)
        if held is not None:  # refused before any credential is issued
            with self.fleet.transaction():
                self._refuse_held(appraisal, request.evidence, held, now)
            raise _held(request.node, held)
        credentials = {
            plane: self.ca._issue_key(
                key,
                node=request.node,
                node_class=record.node_class,
                plane=plane,
                ear_id=appraisal.ear_id,
                now=now,
                lifetime=self.credential_lifetime,
            )
            for plane, key in sorted(public.items())
        }
        fields: dict[str, str | None] = {"ear_id": appraisal.ear_id, "last_attested": stamp}
        control = credentials.get("control")
        if control is not None:
            fields["credential_serial"] = control.serial
            fields["credential_not_after"] = _text(control.not_after)
        # One commit: the EAR, the credentials issued, the registry row and its event. A grant:
        # a power cut may undo it, and then the credentials are unknown to the store and
        # refused (fail closed); it is durable with the next durable commit (_sqlite docs).
        # The node's quarantines and its hold are read again in that commit: a quarantine
        # that committed since the challenge was issued (while the evidence was appraised or
        # the credentials issued) refuses the admission (nonce-superseded: the evidence
        # predates it), whoever quarantined and with or without a hold; one that commits
        # after it revokes the credentials issued here.
        with self.fleet.transaction(durable=False):
            latest, held = self.state._last_event_and_hold(request.node, _QUARANTINED)
            self._check_current(request.node, quarantined, latest)
            # an admission committed since may have used a key for another plane, and a
            # quarantine of another node may have revoked one
            self._check_keys(keys, planes_first=True)
            if held is not None:
                self._refuse_held(appraisal, request.evidence, held, now)
            else:
                self._store_ear(appraisal, request.evidence, now)
                self.credentials._add_issued(
                    [(c, key_digest(keys[plane])) for plane, c in credentials.items()]
                )
                self.fleet._set_status(
                    request.node,
                    "admitted",
                    "readmitted" if record.status == "quarantined" else "attested",
                    now=now,
                    evidence={
                        "ear_id": appraisal.ear_id,
                        "credentials": {p: c.serial for p, c in credentials.items()},
                    },
                    **fields,
                )
        if held is not None:
            raise _held(request.node, held)
        return AdmissionResult(request.node, "admitted", appraisal, credentials, self.ca.der)

    # --- placements -------------------------------------------------------------------------

    def place(
        self,
        vm: str,
        *,
        now: dt.datetime,
        node: str | None = None,
        requested_by: str | None = None,
    ) -> Placement:
        """Place confidential VM ``vm`` on ``node`` (which must be admitted: ``Conflict``
        ``node-not-admitted``, with a current attestation, as key release requires:
        ``attestation-expired``), or on the admitted node with a current attestation running
        the fewest VMs (``Conflict`` ``no-admitted-node`` when there is none).
        ``requested_by`` (the node whose credential asked, on the control plane) is in the
        ``placed`` event, so that the node's record says who put each VM there."""
        if not isinstance(vm, str) or not _VM.fullmatch(vm):
            raise MalformedInput("a VM name is 1-64 of a-z 0-9 -, starting alphanumeric")
        # One transaction from the node's status to the placement and its event: a quarantine
        # (which stops the node's placements) commits before it or after it, never between.
        with self.fleet.transaction():
            if node is not None:
                record = self.fleet.record_of(node)
                if record.status != "admitted":
                    raise Conflict(
                        f"{node} is {record.status}: nothing is placed on it",
                        code="node-not-admitted",
                    )
                if not _attestation_current(record, now):  # no key would reach the VM
                    raise Conflict(
                        f"{node}'s attestation is not current (credential until "
                        f"{record.credential_not_after}): nothing is placed on it",
                        code="attestation-expired",
                    )
                chosen = node
            else:
                admitted = [
                    r.id
                    for r in self.fleet.records()
                    if r.status == "admitted" and _attestation_current(r, now)
                ]
                if not admitted:
                    raise Conflict(
                        "no node is admitted with a current attestation: nothing can be placed",
                        code="no-admitted-node",
                    )
                load = self.state.running()
                chosen = min(admitted, key=lambda n: (load.get(n, 0), n))
            placement = self.state.place(vm, chosen, now)
            detail = {"vm": vm} if requested_by is None else {"vm": vm, "by": requested_by}
            self.fleet.record(chosen, "placed", detail, now=now)
        return placement

    def placements(self, node: str | None = None) -> list[Placement]:
        return self.state.placements(node)

    # --- operators --------------------------------------------------------------------------

    def issue_operator(
        self, operator: str, *, now: dt.datetime, lifetime: int | None = None
    ) -> tuple[PrivateKey, OperatorCredential]:
        """A new ECDSA P-384 key and an operator's control-plane credential for it (the
        admission's credential lifetime unless ``lifetime``), recorded in the credential store
        so that it can be revoked (:meth:`revoke_operator`) and is refused once revoked
        (``docs/fleet.md``, "Operators"). Whoever holds the fleet CA's key issues one: an
        operator credential is no new root of trust."""
        key = PrivateKey.generate(Algorithm.ES384)
        credential = self.ca.issue_operator(
            key.public_key.to_der(),
            operator=operator,
            now=now,
            lifetime=self.credential_lifetime if lifetime is None else lifetime,
        )
        self.credentials.add(credential)
        return key, credential

    def revoke_operator(self, operator: str, reason: str, *, now: dt.datetime) -> list[str]:
        """Revoke every current credential of ``operator``; their serials (none: ``NotFound``
        when the operator never had one; ``ConfigError`` for a name no operator can have).
        ``reason`` is kept to its first 2,000 characters, as a quarantine's: it is echoed in
        every refusal of the revoked credentials."""
        holder = operator_holder(operator)
        if not self.credentials.of_node(holder):
            raise NotFound(f"no credential was ever issued to operator {operator!r}")
        return self.credentials.revoke_node(holder, reason[:_MAX_REASON], now=now)

    def crl(self, *, now: dt.datetime) -> bytes:
        """The fleet CA's CRL of revoked, unexpired credentials (DER; ``GET /fleet/crl``).

        The CRL signed last is answered again while it lists exactly the revoked credentials
        there are and is under :data:`CRL_REUSE` seconds old (it is valid for an hour), as a
        CA publishes one CRL for every relying party: the route is anonymous, and signing a
        CRL for each request let anyone spend the CA's key at will. A revocation changes the
        list, so the next request gets a CRL that names it."""
        revoked = tuple(self.credentials.revoked(now=now))
        with self._crl_lock:
            last = self._crl
            if last is not None and last[0] == revoked:
                age = (now - last[1]).total_seconds()
                if 0 <= age < CRL_REUSE:  # a clock set back signs afresh
                    return last[2]
            der = self.ca.crl(revoked, now=now)
            self._crl = (revoked, now, der)
            return der


# --- the node's side, in process ------------------------------------------------------------


def attest_node(
    fleet: Fleet,
    node_id: str,
    *,
    now: dt.datetime,
    authority: AdmissionAuthority | None = None,
    planes: Sequence[str] = PLANES,
    store: bool = True,
) -> AdmissionResult:
    """Attest and admit ``node_id`` in this process: the node makes a key and CSR per plane
    and answers a fresh challenge with its evidence; the authority admits it (or raises,
    :meth:`AdmissionAuthority.admit`). With ``store`` the node keeps its credentials in
    ``nodes/<id>/credentials/``, its keys sealed to its root of trust."""
    authority = authority or AdmissionAuthority.open(fleet)
    nonce, _ = authority.challenge(now, client=node_id, node=node_id)
    # The node's RoT, open and held for this attestation: its state is verified once, for
    # the quote, the platform journal's counter and the sealing secret (Device.held).
    with fleet.rot(node_id).held() as rot:
        keys = {plane: PrivateKey.generate(Algorithm.ES384) for plane in planes}
        csrs = {plane: make_csr(key, node=node_id, plane=plane) for plane, key in keys.items()}
        spkis = {plane: key.public_key.to_der() for plane, key in keys.items()}
        evidence = collect_evidence(fleet, node_id, nonce=nonce, keys=spkis, now=now, rot=rot)
        request = AdmissionRequest(node_id, nonce, evidence.encode(), csrs)
        result = authority.admit(request, now=now)
        if store:
            # Not synced: lost or damaged by a power cut, they fail to load and the node
            # attests again (store_node_credentials).
            store_node_credentials(
                fleet, node_id, keys, result.credentials, result.ca, durable=False, rot=rot
            )
    return result


def readmit(
    fleet: Fleet,
    node_id: str,
    *,
    now: dt.datetime,
    authority: AdmissionAuthority | None = None,
) -> AdmissionResult:
    """Lift an operator's hold on ``node_id`` and attest it afresh: admitted on an affirming
    EAR; otherwise it stays quarantined (``AdmissionDenied``). There is no readmission
    without a fresh attestation. The hold is lifted and its ``hold-lifted`` event recorded in
    one commit: a process killed between the two would leave the node unheld without a
    record, and the next affirming attestation (the scanner's) would readmit it."""
    authority = authority or AdmissionAuthority.open(fleet)
    fleet.record_of(node_id)
    with fleet.transaction():
        if authority.state.release(node_id):
            fleet.record(node_id, "hold-lifted", {}, now=now)
    return attest_node(fleet, node_id, now=now, authority=authority)


def scan_attest(fleet: Fleet, authority: AdmissionAuthority) -> Callable[[str, dt.datetime], str]:
    """``attest(node_id, now) -> status`` for :class:`ironroot.fleet.Scanner`: an admission
    denied leaves the node quarantined and returns its status; a node whose root of trust's
    state does not verify (``DeviceStateTampered``: the scan asked the node's own RoT, so it
    is the node's drift, not evidence anyone could send) is quarantined, without a hold;
    so is, before it is attested, a node whose RoT's revocation fuses do not revoke every
    vendor key its class's desired state in force revokes (:func:`_revocation_drift`: it
    would still boot firmware signed with one). Both quarantines set the node's
    ``last_attested`` to ``now``: it is due again a period later, not at every round. Other
    errors propagate (the scanner records them)."""

    def attest(node_id: str, now: dt.datetime) -> str:
        try:
            drift = _revocation_drift(fleet, node_id, now)
            if drift is not None:
                # its last_attested set: due again a period later, not at every round
                return _quarantine(
                    fleet,
                    node_id,
                    "attestation failed: the root of trust's fuses are not the desired state's "
                    f"({drift.code}): {drift.item}: {drift.detail}",
                    evidence={"code": drift.code, "item": drift.item, "detail": drift.detail},
                    now=now,
                    hold=False,
                    last_attested=_text(now),
                ).status
            return attest_node(fleet, node_id, now=now, authority=authority).status
        except AdmissionDenied:
            return fleet.record_of(node_id).status
        except DeviceStateTampered as exc:
            # dated by the scan as the revocation quarantine is: due once a period
            return _quarantine(
                fleet,
                node_id,
                "attestation failed: the root of trust's state does not verify "
                f"({exc.code}): {exc.detail}",
                evidence={"code": exc.code},
                now=now,
                hold=False,
                last_attested=_text(now),
            ).status

    return attest


def _revocation_drift(fleet: Fleet, node_id: str, now: dt.datetime) -> DriftItem | None:
    """The first ``fuse:ecc-revoked``/``fuse:pqc-revoked`` drift of ``node_id``: its RoT's
    revocation fuses against the masks of its class's desired state in force (reconcile's
    items, :mod:`ironroot.fleet._reconcile`); ``None`` when they revoke at least those keys or
    the class has no desired state. A desired state in force that cannot be read raises, as
    the verifier's PFM policy does (``StorageError``: the scanner records it)."""
    record = fleet.record_of(node_id)
    try:
        desired = DesiredStore(fleet).current(record.node_class, now=now).state
    except NotFound:
        return None
    if not desired.fuses.ecc_revoked and not desired.fuses.pqc_revoked:
        return None
    for item in revocation_items(desired, fleet.rot(node_id).fuses):
        if not item.ok:
            return item
    return None
