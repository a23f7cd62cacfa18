"""Exporting a node's audit bundle: collect what justifies its state, then seal it.

:func:`collect_export` reads, through the layers below, everything a third party needs to
re-check the node offline (member names in ``docs/fleet.md``, "External audit"): the registry
row and events, the platform's configuration, journaled state, journal and event log, the
RoT's fuse view and DICE chains, the active PFM and every component's active firmware bundle
with the statements each was accepted with, a fresh SPDM measurement of each device answering
a nonce derived from the export nonce, the EAR (when the node was admitted and its token is
found) and, when the node's credentials name another (a node quarantined on a newer EAR),
that EAR with its evidence, the node's current fleet credentials with the fleet CA
certificate and a CRL the CA signs at the export time (when the fleet has admission set
up), the HSM's audit chain and checkpoints (when the node has an HSM), and from each
transparency service given the current checkpoint with the consistency and inclusion proofs
of every receipt it signed. What the node does not have is recorded in the index's
``absent`` map with the reason.
:meth:`AuditExport.seal` has the node's RoT quote the index.

Where an EAR is found, in order: the ``ear`` argument; the EAR the admission keeps under
the registry's ``ear_id`` (``fleet.db``; not the node's latest, which a refused answer
anyone may send replaces), or the node's latest EAR the admission stored
(``<fleet>/admission/ears/<node>.jwt``) when its id is the registry's ``ear_id``;
``<fleet>/ears/<ear id>.jwt`` or ``.cwt``; the ``ear`` member (a compact JWT) of the node's
latest ``admitted`` event. The evidence the EAR was issued for (``attestation/evidence.cbor``)
is the ``evidence`` argument, or what the admission stored beside that EAR
(``<node>.evidence.cbor``, :mod:`ironroot.fleet._attestations`); without it the bundle records
it absent, and verify refuses the EAR as bound to nothing. An HSM belongs to a node when
``<node>/hsm/audit.jsonl`` exists (an ``ironroot.hsm`` directory); its live audit log goes in
``hsm/audit.jsonl`` and its archived segments (``audit-<first>-<last>.jsonl``) in
``hsm/audit-<first>-<last>.jsonl``, the newest first while the HSM's part stays within
``HSM_AUDIT_BUDGET`` (512 MiB) and 256 segments, the older ones stated absent as
``hsm/audit-archived`` (the records they hold, and why); its signed audit
checkpoints are the ``*.cose`` files of ``<node>/hsm/checkpoints/`` (``ironroot hsm audit
checkpoint --out``), the last ``HSM_CHECKPOINTS`` (256) by name, and its attestation chain
``<node>/hsm/attestation-chain.pem`` (``ironroot hsm info --chain-out``) goes in
``hsm/attestation-chain.pem`` (stated absent without it). Every file export copies
from the node's directory (``platform.json``, ``credentials/``, ``hsm/``) is read only as a
regular file beneath it: the node's own software writes there (its HSM and key service
``<node>/hsm``), and a symbolic link, named pipe or device planted there is stated absent,
never followed nor read (the HSM reads only regular files there too); ``platform.json`` only
when its bytes are those the platform was opened with. The release
statements the HSM signed are those its key service kept (``ironroot.keyrelease``, ADR
0015): the ``releases`` argument (a key service's
``releases.db``), else ``<node>/releases.db`` — a key service whose data directory is the
node's, serving the node's HSM ``<node>/hsm`` (not opened when it is a symbolic link); the
newest 10,000 of them go in ``hsm/releases.cbor``, a CBOR array of the statements' bytes.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import os
import re
import secrets
import stat
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Final

from ironroot._fileio import read_beneath, read_limited
from ironroot.audit._bundle import (
    MAX_BUNDLE_BYTES,
    MAX_REASON,
    AuditBundle,
    AuditIndex,
    MemberEntry,
    check_limits,
    check_name,
    seal_nonce,
)
from ironroot.audit._proofs import fetch_log
from ironroot.cose import Receipt, TransparentStatement, encode_cbor
from ironroot.crypto import Algorithm
from ironroot.errors import (
    ConfigError,
    Conflict,
    InputUnavailable,
    IronrootError,
    LimitExceeded,
)
from ironroot.fleet import (
    ADMISSION_DIR,
    PLANES,
    AdmissionAuthority,
    Fleet,
    StoredAttestation,
    ear_id_of,
    latest_attestation,
    parse_credential,
    stored_attestation,
)
from ironroot.hsm import MAX_AUDIT_FILE, parse_segment_name
from ironroot.keyrelease import RELEASES_DB, ReleaseStatements
from ironroot.log import LogFetcher
from ironroot.platform import (
    COMPONENTS,
    DEVICES,
    Platform,
    PlatformDevice,
    device_references,
    measure_device,
)
from ironroot.rot import Device

__all__ = [
    "EXPORT_ATTEMPTS",
    "NODE_CHANGED",
    "AuditExport",
    "collect_export",
    "credential_ear_members",
    "export_bundle",
    "export_sealed",
    "spdm_nonce",
]

JSON: Final = "application/json"
CBOR: Final = "application/cbor"
COSE: Final = "application/cose"
FIRMWARE: Final = "application/octet-stream"
NOTE: Final = "text/plain"
JSONL: Final = "application/jsonl"
JWT: Final = "application/jwt"
CWT: Final = "application/cwt"
PEM: Final = "application/pem-certificate-chain"
CRL: Final = "application/pkix-crl"
CREDENTIAL_ABSENT: Final = "fleet/credential"
"""The ``absent`` key saying why the bundle holds no ``fleet/credential-<plane>.pem``."""
_MAX_FILE: Final = 64 * 1024 * 1024
_EAR_ID: Final = re.compile(r"[A-Za-z0-9._-]{1,128}")
_SPDM_DOMAIN: Final = b"ironroot-audit-bundle/1 spdm\x00"
RELEASES_MEMBER: Final = "hsm/releases.cbor"
MAX_RELEASES: Final = 10_000
HSM_AUDIT_BUDGET: Final = 512 * 1024 * 1024
"""The most of an HSM's audit log a bundle holds: the live log, then its newest archived
segments while they fit (the records before them are stated absent: ``HSM_ARCHIVED``)."""
HSM_AUDIT_SEGMENTS: Final = 256
HSM_CHAIN: Final = "hsm/attestation-chain.pem"
"""The HSM's attestation chain (attestation certificate, device chain), from
``<node>/hsm/attestation-chain.pem`` (``ironroot hsm info --chain-out``): public and
self-authenticating, it ties the HSM to the node when its device is a DPE child of the
node's RoT (docs/fleet.md, "External audit")."""
HSM_CHAIN_FILE: Final = "attestation-chain.pem"
HSM_ARCHIVED: Final = "hsm/audit-archived"
HSM_CHECKPOINTS: Final = 256
"""The most signed audit checkpoints a bundle holds: the last ones by file name (the rest are
stated absent as ``hsm/checkpoints``); a bundle holds at most 1,024 members."""
_PLATFORM_CONFIG: Final = "platform.json"


def spdm_nonce(export_nonce: bytes, device: str) -> bytes:
    """The 32-byte SPDM challenge the export sends ``device`` (bound to the sealed nonce)."""
    return hashlib.sha256(_SPDM_DOMAIN + export_nonce + device.encode()).digest()


def _json(value: object) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


@dataclass(frozen=True, slots=True)
class AuditExport:
    """A node's members and absences before the seal: ``members`` maps each name to its
    bytes and media type. :meth:`seal` has the node's RoT sign the index."""

    node: str
    node_class: str
    platform: str
    exported_at: dt.datetime
    nonce: bytes
    members: Mapping[str, tuple[bytes, str]]
    absent: Mapping[str, str] = field(default_factory=dict)
    journaled: int | None = None
    """The node's journal counter when the collection began (:func:`collect_export`): every
    boot, update step and recovery moves it, so :meth:`seal` given the node can tell that
    nothing the members show changed before the seal."""

    def __post_init__(self) -> None:
        for name in (*self.members, *self.absent):
            check_name(name)
        # a reason quotes an error's detail, of any length: verify reads 1 to MAX_REASON
        absent = {
            name: reason[: MAX_REASON - 1] + "…" if len(reason) > MAX_REASON else reason
            for name, reason in self.absent.items()
        }
        object.__setattr__(self, "members", MappingProxyType(dict(self.members)))
        object.__setattr__(self, "absent", MappingProxyType(absent))

    def index(self) -> AuditIndex:
        return AuditIndex(
            node=self.node,
            node_class=self.node_class,
            platform=self.platform,
            exported_at=self.exported_at,
            nonce=self.nonce,
            members={n: MemberEntry.of(d, t) for n, (d, t) in self.members.items()},
            absent=self.absent,
        )

    def replace(
        self,
        members: Mapping[str, tuple[bytes, str] | None] | None = None,
        absent: Mapping[str, str | None] | None = None,
    ) -> AuditExport:
        """A copy with ``members`` set (``None`` removes one) and ``absent`` reasons set."""
        new_members = dict(self.members)
        for name, value in (members or {}).items():
            if value is None:
                new_members.pop(name, None)
            else:
                new_members[name] = value
        new_absent = dict(self.absent)
        for name, reason in (absent or {}).items():
            if reason is None:
                new_absent.pop(name, None)
            else:
                new_absent[name] = reason
        return dataclasses.replace(self, members=new_members, absent=new_absent)

    def seal(self, rot: Device, *, node: Platform | None = None) -> bytes:
        """The bundle file: the index sealed by ``rot`` (the node's root of trust).
        ``LimitExceeded`` before anything is signed when ``audit verify`` could not read the
        bundle back (over 1,024 members, an index over its limits, over 1 GiB).

        ``node``: the node's platform. The seal then holds the node (no boot, update or
        recovery runs while the RoT quotes) and is made only when the node's journal is where
        it was when the collection began; else ``Conflict`` ``node-changed-during-export``
        and nothing is signed (the members may show two states of the node: collect again)."""
        members = {n: d for n, (d, _t) in self.members.items()}
        index = self.index().encode()
        check_limits(index, members)
        if node is None:
            quote = rot.quote(seal_nonce(index))
        else:
            with node.rot(device=rot) as held:
                last = held.journal.last
                now = last.ctr if last is not None else 0
                if self.journaled is None or now != self.journaled:
                    raise Conflict(
                        f"{self.node} changed while it was exported (journal at "
                        f"{self.journaled}, now {now}: a boot, update or recovery ran): "
                        "export again",
                        code=NODE_CHANGED,
                    )
                quote = rot.quote(seal_nonce(index))
        data = AuditBundle(index, members, quote).encode()
        if len(data) > MAX_BUNDLE_BYTES:
            raise LimitExceeded(
                f"the bundle would be {len(data)} bytes: audit verify reads at most "
                f"{MAX_BUNDLE_BYTES}"
            )
        return data


NODE_CHANGED: Final = "node-changed-during-export"
"""The ``Conflict`` code of a seal whose node changed after the collection began."""

EXPORT_ATTEMPTS: Final = 3
"""How many times :func:`export_sealed` collects a node that keeps changing."""


def export_sealed(
    fleet: Fleet, node_id: str, collect: Callable[[], AuditExport]
) -> tuple[AuditExport, bytes]:
    """``collect()`` (a :func:`collect_export` of ``node_id``) sealed by the node's RoT while
    the node is held and unchanged since the collection began (:meth:`AuditExport.seal`);
    collected again when a boot, update or recovery ran meanwhile, at most
    :data:`EXPORT_ATTEMPTS` times (then the ``Conflict``)."""
    for attempt in range(1, EXPORT_ATTEMPTS + 1):
        export = collect()
        try:
            return export, export.seal(fleet.rot(node_id), node=fleet.node(node_id))
        except Conflict as exc:
            if exc.code != NODE_CHANGED or attempt == EXPORT_ATTEMPTS:
                raise
    raise AssertionError("unreachable")  # pragma: no cover


def _ear(
    fleet: Fleet, node_id: str, ear_id: str | None
) -> tuple[tuple[bytes, str], bytes | None] | str:
    """The node's EAR with its media type, and the evidence it appraised when it is known;
    or why there is no EAR."""
    if not ear_id:
        return "the registry holds no EAR for the node: it was never admitted"
    stored = _stored(fleet, node_id, ear_id)
    if stored is not None:
        return (stored.ear, JWT), stored.evidence
    if _EAR_ID.fullmatch(ear_id):
        for suffix, media in ((".jwt", JWT), (".cwt", CWT)):
            path = fleet.directory / "ears" / f"{ear_id}{suffix}"
            if path.is_file():
                return (read_limited(path, 1024 * 1024), media), None
    for event in reversed(fleet.events(node=node_id, limit=100_000)):
        token = event.detail.get("ear") if event.kind == "admitted" else None
        if isinstance(token, str) and token:
            return (token.encode("ascii", "replace"), JWT), None
    return (
        f"the registry names EAR {ear_id}, but its token is stored neither in the admission's "
        "ears/, nor in ears/, nor in the admission event"
    )


def _stored(fleet: Fleet, node_id: str, ear_id: str) -> StoredAttestation | None:
    """The EAR ``ear_id`` of the node and its evidence as the admission keeps them: by id in
    ``fleet.db`` (the one its registry row names is kept, whatever EAR is its latest: a
    refused answer's, which anyone can cause), else its latest when that is it (the
    admission's files, before fleet.db kept EARs)."""
    admission = fleet.directory / ADMISSION_DIR
    stored = stored_attestation(admission, node_id, ear_id)
    if stored is None:
        stored = latest_attestation(admission, node_id)
    return stored if stored is not None and stored.ear_id == ear_id else None


def _evidence_of(fleet: Fleet, node_id: str, ear: bytes) -> bytes | None:
    """The evidence the admission stored beside ``ear``, when it keeps ``ear``."""
    stored = _stored(fleet, node_id, ear_id_of(ear))
    return stored.evidence if stored is not None and stored.ear == ear else None


def _credentials(
    fleet: Fleet, node_id: str, node_dir: Path, now: dt.datetime
) -> tuple[dict[str, tuple[bytes, str]], dict[str, str]]:
    """The node's current fleet credentials (what it keeps in ``nodes/<id>/credentials/``,
    ``node_dir`` the node's directory: read as regular files only, :func:`_beneath`),
    the fleet CA certificate (for reference: verify trusts only its own copy) and a CRL the
    fleet CA signs at the export time — the fleet's (revoked, unexpired) and every revoked
    credential of the node, expired or not; or why each is absent."""
    members: dict[str, tuple[bytes, str]] = {}
    absent: dict[str, str] = {}
    ca = fleet.directory / ADMISSION_DIR / "ca.cert.pem"
    if not ca.is_file():
        absent["fleet/ca.pem"] = "the fleet has no admission set up: it has no fleet CA"
        absent[CREDENTIAL_ABSENT] = "the fleet has no admission set up: no node has credentials"
        return members, absent
    members["fleet/ca.pem"] = (read_limited(ca, 64 * 1024), PEM)
    for plane in PLANES:
        relative = f"credentials/{plane}.cert.pem"
        if not os.path.lexists(node_dir / relative):
            continue
        pem = _beneath(node_dir, relative, 64 * 1024)
        if isinstance(pem, str):
            absent[f"fleet/credential-{plane}.pem"] = pem
        else:
            members[f"fleet/credential-{plane}.pem"] = (pem, PEM)
    if not any(n.startswith("fleet/credential-") for n in members):
        absent[CREDENTIAL_ABSENT] = (
            "the node holds no fleet credential: it was never admitted (or its credential "
            "files are gone)"
        )
    try:
        authority = AdmissionAuthority.open(fleet)
        revoked = dict(authority.credentials.revoked(now=now))
        for status in authority.credentials.of_node(node_id):  # expired ones too: what
            if status.revoked_at is not None:  # the node's were, revoked when
                revoked.setdefault(status.serial, status.revoked_at)
        listed = sorted(revoked.items(), key=lambda item: (item[1], item[0]))
        members["fleet/crl.der"] = (authority.ca.crl(listed, now=now), CRL)
    except IronrootError as exc:
        absent["fleet/crl.der"] = f"the fleet CA cannot sign a CRL: {exc.code}: {exc.detail}"
    return members, absent


def credential_ear_members(plane: str) -> tuple[str, str]:
    """The members holding the EAR ``plane``'s credential was issued on and its evidence, when
    that EAR is not the node's latest (``attestation/ear.jwt``)."""
    return (
        f"attestation/credential-{plane}-ear.jwt",
        f"attestation/credential-{plane}-evidence.cbor",
    )


def _credential_ears(
    fleet: Fleet, node_id: str, credentials: Mapping[str, tuple[bytes, str]], latest: str | None
) -> tuple[dict[str, tuple[bytes, str]], dict[str, str]]:
    """The EAR each credential was issued on, with its evidence, when it is not the latest
    EAR the bundle holds (``latest``: its id) — a quarantined node's credentials name the EAR
    it was admitted on — once per EAR (under the first plane naming it); or why absent."""
    members: dict[str, tuple[bytes, str]] = {}
    absent: dict[str, str] = {}
    seen = {latest}
    for plane in PLANES:
        pem = credentials.get(f"fleet/credential-{plane}.pem")
        if pem is None:
            continue
        ear_name, evidence_name = credential_ear_members(plane)
        try:
            ear_id = parse_credential(pem[0]).ear_id
        except IronrootError as exc:
            absent[ear_name] = f"the {plane}-plane credential does not parse: {exc.code}"
            continue
        if ear_id in seen:
            continue
        seen.add(ear_id)
        stored = stored_attestation(fleet.directory / ADMISSION_DIR, node_id, ear_id)
        if stored is None:
            absent[ear_name] = f"the admission no longer keeps EAR {ear_id}"
            continue
        members[ear_name] = (stored.ear, JWT)
        if stored.evidence is None:
            absent[evidence_name] = "the evidence the EAR was issued for is not stored beside it"
        else:
            members[evidence_name] = (stored.evidence, CBOR)
    return members, absent


def _beneath(node_dir: Path, relative: str, limit: int) -> bytes | str:
    """The bytes of the regular file ``relative`` beneath the node's directory, or why not.
    The node's directory is written by the node's own software, not the operator (its HSM and
    key service write ``hsm/``, the admission ``credentials/``): a symbolic link planted
    there (to the fleet CA's key) is not followed, as the HSM reads only regular files there
    too (:func:`ironroot._fileio.read_beneath`), so nothing from outside it is sealed into a
    bundle that leaves the fleet; nor is a named pipe or a device read (a pipe whose writer
    never writes kept the export waiting)."""
    try:
        return read_beneath(node_dir, relative, limit, regular=True)
    except InputUnavailable:
        return (
            f"{relative} is not a regular file of the node's directory (a named pipe, a "
            "device or a folder is not read)"
        )
    except OSError as exc:
        return (
            f"{relative} is not a regular file of the node's directory (a symbolic link "
            f"is not followed): {(exc.strerror or str(exc)).lower()}"
        )
    except IronrootError as exc:
        return f"{relative} cannot be read: {exc.code}: {exc.detail}"


def _platform_config(platform: Platform) -> bytes | str:
    """The bytes of the node's ``platform.json`` as the platform opened them, or why not: read
    as a regular file beneath the node's directory (:func:`_beneath`), and only when they are
    the bytes the platform was opened with (its ``config_digest``), not a file put there
    since."""
    data = _beneath(platform.directory, _PLATFORM_CONFIG, 1024 * 1024)
    if isinstance(data, bytes) and hashlib.sha256(data).digest() != platform.config_digest:
        return (
            f"{_PLATFORM_CONFIG} changed after the node was opened: it is not the "
            "configuration the platform runs on"
        )
    return data


def _hsm(node_dir: Path) -> tuple[dict[str, tuple[bytes, str]], dict[str, str]] | str:
    directory = node_dir / "hsm"
    audit = directory / "audit.jsonl"
    if not audit.is_file():
        return f"the node has no HSM ({audit.relative_to(node_dir.parent.parent)} does not exist)"
    live = _beneath(node_dir, "hsm/audit.jsonl", MAX_AUDIT_FILE)
    if isinstance(live, str):
        return live
    members = {"hsm/audit.jsonl": (live, JSONL)}
    absent: dict[str, str] = {}
    spans = sorted(
        (span, path)
        for path in directory.glob("audit-*.jsonl")
        if (span := parse_segment_name(path.name)) is not None
    )
    budget, kept = HSM_AUDIT_BUDGET - len(live), 0
    for (_first, last), path in reversed(spans):  # the newest segments, while they fit
        size = path.lstat().st_size
        if size > budget or kept == HSM_AUDIT_SEGMENTS:
            absent[HSM_ARCHIVED] = (
                f"records 0 to {last} of the HSM's audit chain are in "
                f"archived segments left out of the bundle (it holds at most "
                f"{HSM_AUDIT_BUDGET // (1024 * 1024)} MiB of the audit log, in at most "
                f"{HSM_AUDIT_SEGMENTS} segments): ironroot hsm audit verify --dir checks them"
            )
            break
        segment = _beneath(node_dir, f"hsm/{path.name}", size)
        if isinstance(segment, str):
            absent[f"hsm/{path.name}"] = segment
            continue
        members[f"hsm/{path.name}"] = (segment, JSONL)
        budget, kept = budget - len(segment), kept + 1
    checkpoints = directory / "checkpoints"
    if checkpoints.is_dir() and not checkpoints.is_symlink():
        found = sorted(checkpoints.glob("*.cose"))
        if len(found) > HSM_CHECKPOINTS:
            absent["hsm/checkpoints"] = (
                f"{len(found) - HSM_CHECKPOINTS} of the {len(found)} signed audit checkpoints "
                f"in the node's hsm/checkpoints are left out (a bundle holds the last "
                f"{HSM_CHECKPOINTS} by name)"
            )
            found = found[-HSM_CHECKPOINTS:]
        for number, path in enumerate(found):
            checkpoint = _beneath(node_dir, f"hsm/checkpoints/{path.name}", 1024 * 1024)
            if isinstance(checkpoint, str):
                absent[f"hsm/checkpoint-{number}.cose"] = checkpoint
            else:
                members[f"hsm/checkpoint-{number}.cose"] = (checkpoint, COSE)
    chain = directory / HSM_CHAIN_FILE
    if not chain.exists() and not chain.is_symlink():
        absent[HSM_CHAIN] = (
            f"the node's hsm/{HSM_CHAIN_FILE} does not exist; ironroot hsm info --chain-out "
            "writes it"
        )
    else:
        found_chain = _beneath(node_dir, f"hsm/{HSM_CHAIN_FILE}", 64 * 1024)
        if isinstance(found_chain, str):
            absent[HSM_CHAIN] = found_chain
        else:
            members[HSM_CHAIN] = (found_chain, PEM)
    return members, absent


def _releases(path: Path, *, node_file: bool) -> tuple[bytes, str] | str:
    """The release statements kept in the key service database ``path``, or why none.
    ``node_file``: ``path`` is the node's own ``releases.db``, which is not read through a
    symbolic link (planted to another key service's database, it sealed that service's
    statements into the bundle) nor when it is not a regular file."""
    if node_file and os.path.lexists(path) and not stat.S_ISREG(os.lstat(path).st_mode):
        return (
            f"{path.name} is not a regular file of the node's directory (a symbolic link is "
            "not followed)"
        )
    if not path.is_file():
        return f"no key service keeps the HSM's release statements here ({path.name} is absent)"
    try:
        store = ReleaseStatements(path, create=False)
        try:
            statements = store.statements(limit=MAX_RELEASES)
        finally:
            store.close()
    except IronrootError as exc:
        return f"the key service's release statements cannot be read: {exc.code}: {exc.detail}"
    return encode_cbor(list(statements)), CBOR


def _devices(
    platform: Platform,
    images: Mapping[str, bytes],
    statements: Mapping[str, tuple[bytes, ...]],
    nonce: bytes,
    now: dt.datetime,
) -> tuple[dict[str, tuple[bytes, str]], dict[str, str]]:
    members: dict[str, tuple[bytes, str]] = {}
    absent: dict[str, str] = {}
    trust = platform.config.trust
    for name in DEVICES:
        if name not in images:
            absent[f"spdm/{name}.cbor"] = f"{name} was not measured: its active image is absent"
            continue
        info = platform.config.devices[name]
        try:
            references = device_references(
                statements[name],
                trust_service_keys=trust.service_keys,
                service_issuer=trust.service_issuer,
                issuers=trust.issuers_of(name),
                vendor=info.vendor,
                model=info.model,
                now=now,
            )
            device = PlatformDevice.open(platform.directory / "devices", name)
            result = measure_device(
                device,
                images[name],
                root=info.root,
                references=references,
                now=now,
                nonce=spdm_nonce(nonce, name),
            )
        except IronrootError as exc:
            absent[f"spdm/{name}.cbor"] = f"{name} could not be measured: {exc.code}: {exc.detail}"
            continue
        if result.evidence is None:
            absent[f"spdm/{name}.cbor"] = f"{name}'s SPDM session failed: {result.code}"
        else:
            members[f"spdm/{name}.cbor"] = (result.evidence, CBOR)
    return members, absent


def collect_export(
    fleet: Fleet,
    node_id: str,
    *,
    logs: Sequence[LogFetcher],
    now: dt.datetime,
    ear: bytes | None = None,
    evidence: bytes | None = None,
    releases: Path | None = None,
    progress: Callable[[str], None] | None = None,
) -> AuditExport:
    """Everything that justifies ``node_id``'s state (module docs), not yet sealed.

    ``logs``: the transparency services whose receipts the node's statements carry (their
    read API: checkpoint, tiles, keys); ``now``: the export time; ``ear``: the node's EAR when
    the caller has it (else it is looked up, module docs), ``evidence`` the node evidence it
    was issued for (else the evidence the admission stored beside it, if that EAR);
    ``releases``: the key service database holding the release statements of the node's HSM
    (else ``<node>/releases.db``)."""
    if now.tzinfo is None:
        raise ConfigError("now must be timezone-aware")
    if not logs:
        raise ConfigError("an export fetches checkpoints from at least one transparency service")
    step = progress or (lambda _what: None)
    record = fleet.record_of(node_id)
    platform = fleet.node(node_id)
    rot = fleet.rot(node_id)
    # read first: whatever changes the node after this moves the journal, and the seal sees it
    journal = platform.journal()
    journaled = journal[-1]["ctr"] if journal else 0
    nonce = secrets.token_bytes(32)
    members: dict[str, tuple[bytes, str]] = {}
    absent: dict[str, str] = {}

    step("registry and platform state")
    members["node/record.json"] = (_json(record.to_json()), JSON)
    events = fleet.events(node=node_id, limit=100_000)
    members["node/events.json"] = (_json([e.to_json() for e in events]), JSON)
    config = _platform_config(platform)
    if isinstance(config, str):
        absent["platform/config.json"] = config
    else:
        members["platform/config.json"] = (config, JSON)
    members["platform/state.json"] = (_json(platform.show()), JSON)
    members["platform/journal.json"] = (_json(journal), JSON)
    members["platform/events.json"] = (_json([e.to_json() for e in platform.events()]), JSON)

    step("fuses and DICE chain")
    shown = rot.show()
    members["rot/fuses.json"] = (_json(shown["fuses"]), JSON)
    chains = {
        "es384": list(rot.chain(Algorithm.ES384)),
        "ml-dsa-87": list(rot.chain(Algorithm.ML_DSA_87)),
    }
    members["rot/dice-chain.cbor"] = (encode_cbor(chains), CBOR)

    step("PFM and firmware")
    state = platform.state()
    logged: dict[str, bytes] = {}
    images: dict[str, bytes] = {}
    statements: dict[str, tuple[bytes, ...]] = {}
    try:
        members["pfm/pfm.cose"] = (platform.active_image("pfm"), COSE)
        if state.pfm.image is not None:
            pfm_statements, pfm_statement = platform.evidence(state.pfm.image.evidence)
            carried = (pfm_statement,) if pfm_statement is not None else pfm_statements
            for number, data in enumerate(carried):
                name = "pfm/statement.cose" if number == 0 else f"pfm/statement-{number}.cose"
                members[name] = (data, COSE)
                logged[name] = data
    except IronrootError as exc:
        absent["pfm/pfm.cose"] = f"the active PFM cannot be read: {exc.code}: {exc.detail}"
    for component in COMPONENTS:
        cs = state.component(component)
        try:
            images[component] = platform.active_image(component)
            assert cs.image is not None
            statements[component] = platform.evidence(cs.image.evidence)[0]
        except IronrootError as exc:
            absent[f"firmware/{component}/bundle.bin"] = (
                f"{component}'s active image cannot be read: {exc.code}: {exc.detail}"
            )
            images.pop(component, None)
            continue
        members[f"firmware/{component}/bundle.bin"] = (images[component], FIRMWARE)
        for number, data in enumerate(statements[component]):
            name = f"firmware/{component}/statement-{number}.cose"
            members[name] = (data, COSE)
            logged[name] = data

    step("SPDM measurements")
    spdm, spdm_absent = _devices(platform, images, statements, nonce, now)
    members.update(spdm)
    absent.update(spdm_absent)

    step("attestation result and HSM")
    found = (
        ((ear, CWT if ear[:1] == b"\xd2" else JWT), evidence or _evidence_of(fleet, node_id, ear))
        if ear is not None
        else _ear(fleet, node_id, record.ear_id)
    )
    if isinstance(found, str):
        absent["attestation/ear"] = found
    else:
        (token, media), appraised = found
        members[f"attestation/ear.{media.rsplit('/', 1)[1]}"] = (token, media)
        if appraised is not None:
            members["attestation/evidence.cbor"] = (appraised, CBOR)
        else:
            absent["attestation/evidence.cbor"] = (
                "the evidence the EAR was issued for is not stored beside it"
            )
    credentials, credentials_absent = _credentials(fleet, node_id, platform.directory, now)
    members.update(credentials)
    absent.update(credentials_absent)
    latest = None if isinstance(found, str) else ear_id_of(found[0][0])
    issued_on, issued_absent = _credential_ears(fleet, node_id, credentials, latest)
    members.update(issued_on)
    absent.update(issued_absent)
    hsm_found = _hsm(platform.directory)
    if isinstance(hsm_found, str):
        absent["hsm"] = hsm_found
    else:
        hsm, hsm_absent = hsm_found
        members.update(hsm)
        absent.update(hsm_absent)
        logged.update({n: d for n, (d, _t) in hsm.items() if n.startswith("hsm/checkpoint-")})
        kept = (
            _releases(releases, node_file=False)
            if releases is not None
            else _releases(platform.directory / RELEASES_DB, node_file=True)
        )
        if isinstance(kept, str):
            absent[RELEASES_MEMBER] = kept
        else:
            members[RELEASES_MEMBER] = kept

    step("checkpoints and proofs")
    transparent = {n: d for n, d in logged.items() if _has_receipts(d)}
    covered: set[bytes] = set()
    number = 0
    for fetcher in logs:
        fetched = fetch_log(fetcher, transparent)
        if fetched.kids and fetched.kids <= covered:  # a service given twice: verify takes
            continue  # one proof of each receipt
        covered |= fetched.kids
        members[f"transparency/{number}/checkpoint"] = (fetched.checkpoint, NOTE)
        members[f"transparency/{number}/proofs.cbor"] = (fetched.proofs.encode(), CBOR)
        number += 1
    for kid in sorted(_receipt_kids(transparent) - covered):
        absent[f"transparency/kid-{kid.hex()[:16]}"] = (
            f"no transparency service given at export publishes receipt key {kid.hex()}: "
            "its receipts are not covered by a checkpoint"
        )
    return AuditExport(
        node=node_id,
        node_class=record.node_class,
        platform=platform.config.trust.platform,
        exported_at=now,
        nonce=nonce,
        members=members,
        absent=absent,
        journaled=journaled,
    )


def _has_receipts(data: bytes) -> bool:
    try:
        TransparentStatement.parse(data)
    except IronrootError:
        return False
    return True


def _receipt_kids(statements: Mapping[str, bytes]) -> set[bytes]:
    kids: set[bytes] = set()
    for data in statements.values():
        for receipt in TransparentStatement.parse(data).receipts:
            kids.add(Receipt.parse(receipt).kid)
    return kids


def export_bundle(
    fleet: Fleet,
    node_id: str,
    *,
    logs: Sequence[LogFetcher],
    now: dt.datetime,
    ear: bytes | None = None,
    evidence: bytes | None = None,
    releases: Path | None = None,
    progress: Callable[[str], None] | None = None,
) -> bytes:
    """The node's audit bundle: :func:`collect_export`, sealed by the node's RoT while the
    node is unchanged since the collection began (:func:`export_sealed`)."""

    def collect() -> AuditExport:
        export = collect_export(
            fleet,
            node_id,
            logs=logs,
            now=now,
            ear=ear,
            evidence=evidence,
            releases=releases,
            progress=progress,
        )
        if progress is not None:
            progress("seal")
        return export

    return export_sealed(fleet, node_id, collect)[1]
