"""The fleet, read-only: the registry, the events, and each node's chain of trust re-checked.

A node's **chain of trust** is nine links, each checked here from what the fleet and the node
hold — nothing is written, no device is asked to sign anything:

=============  ===============================================================================
link           checked from (the failing check's name when it fails)
=============  ===============================================================================
fuses          the RoT's fuse view against the class trust: vendor key hash
               (``vendor-key-hash``), production lifecycle (``lifecycle``), debug locked
               (``debug-unlocked``), anti-rollback on (``anti-rollback``)
pfm            the active PFM verified (:func:`ironroot.platform.verify_pfm`) under the class's
               vendor keys and the fused hash, for this platform, and its statement's receipt
               by a trusted transparency service (``no-receipt``, the receipt's error), and
               the PFM the RoT measured at its last boot
               (:func:`ironroot.rot.check_booted_pfm`: ``pfm-not-booted``; a boot before PFMs
               were measured is ``unknown``, ``pfm-not-measured``: boot again)
firmware       every component's active image through every update check again
               (:func:`ironroot.platform.verify_update`: signatures, revocation, SVN floor,
               PFM, receipt, issuer, SAFE review; ``check`` names the failing one), with its
               recovery image, which the PFM in force must still allow
               (:func:`ironroot.platform.check_recovery_images`,
               ``pfm: pfm-drops-recovery-image``)
dice           the RoT's DICE chains (both algorithms) to a vendor root admission trusts
               (:func:`ironroot.rot.verify_chain`)
quote          the EAR's ``rot`` submodule: what the verifier found in the node's last quote
spdm           the EAR's device submodules: each SPDM device's signed measurements
ear            the EAR the registry names (else the node's latest) verified under the fleet
               verifier's key, unexpired, and affirming (``ear-expired``,
               ``ear-not-affirming``)
credential     the control-plane credential the registry names: issued, unrevoked, current
               (``credential-revoked``, ``credential-expired``, ``no-credential``)
keys           whether key release may release keys to the node's VMs
               (:func:`ironroot.fleet.node_may_receive_keys`: ``node-not-admitted``, …)
=============  ===============================================================================

A link whose inputs are absent (a node never attested has no EAR) is ``unknown`` (grey), not
red: red means a check ran and failed.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from ironroot._fileio import read_limited
from ironroot.cose import SignedStatement, TransparentStatement, verify_transparent_statement
from ironroot.crypto import Algorithm, PublicKey, load_certificates
from ironroot.ear import TrustTier, decode_ear
from ironroot.errors import (
    IronrootError,
    NotFound,
    PolicyRejected,
    StorageError,
    VerificationFailed,
)
from ironroot.fleet import (
    ADMISSION_DIR,
    CredentialStore,
    Fleet,
    FleetEvent,
    NodeClass,
    NodeRecord,
    node_may_receive_keys,
)
from ironroot.platform import (
    COMPONENTS,
    PFM_CONTENT_TYPE,
    Pfm,
    check_recovery_images,
    unwrap_witnessed,
    verify_pfm,
    verify_update,
)
from ironroot.rot import (
    DiceCertificate,
    Fuses,
    Lifecycle,
    check_booted_pfm,
    measured_pfm,
    parse_certificate,
    verify_chain,
)
from ironroot.web._logs import failure
from ironroot.web._text import utc

__all__ = ["FleetSource", "Link", "NodeChain", "NodeRow"]

OK: Final = "ok"
FAIL: Final = "fail"
UNKNOWN: Final = "unknown"
_CHECK: Final = re.compile(r"([a-z0-9][a-z0-9-]{0,40}): ")
_MAX_EAR: Final = 1024 * 1024
_MAX_ROOTS: Final = 1024 * 1024
_ATTESTED_OK: Final = frozenset({"admitted"})
_ATTESTED_BAD: Final = frozenset({"quarantined", "admission-refused", "admission-held"})
_DICE_LAYERS: Final = ("IDevID", "LDevID", "FMC alias", "RT alias")


def repeats(detail: Mapping[str, Any]) -> int:
    """How many occurrences an event stands for: its ``count`` (a run of refused admissions
    folded into one event, :meth:`ironroot.fleet.Fleet.record_repeated`); 1 when it has
    none, or a damaged one."""
    count = detail.get("count", 1)
    return count if isinstance(count, int) and not isinstance(count, bool) and count > 0 else 1


def parse_time(text: str | None) -> dt.datetime | None:
    """A registry's time (ISO 8601, written in UTC) as an aware time; ``None`` for none or
    text that is not one. One without an offset is UTC too, not the server's local time (in
    the year 1 that has no POSIX time, and ``timestamp()`` raised)."""
    if not text:
        return None
    try:
        moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=dt.UTC)


@dataclass(frozen=True, slots=True)
class Link:
    """One link of a node's chain of trust (module docs)."""

    key: str
    name: str
    status: str
    summary: str
    check: str | None = None
    details: tuple[str, ...] = ()
    statements: tuple[str, ...] = ()
    """Entry ids (hex) of the logged statements this link rests on."""

    @property
    def ok(self) -> bool:
        return self.status == OK


@dataclass(frozen=True, slots=True)
class NodeRow:
    """One row of the fleet table."""

    record: NodeRecord
    firmware: Mapping[str, str]
    error: str | None = None

    @property
    def id(self) -> str:
        return self.record.id


@dataclass(frozen=True, slots=True)
class NodeChain:
    """A node's page: its registry row, chain of trust and events."""

    record: NodeRecord
    links: tuple[Link, ...]
    events: tuple[FleetEvent, ...]
    ear: Mapping[str, Any] | None

    @property
    def broken(self) -> tuple[Link, ...]:
        return tuple(link for link in self.links if link.status == FAIL)


def _check_of(exc: IronrootError) -> str:
    return exc.check or exc.code


def _reason_check(reason: str) -> str | None:
    """The check a verifier reason line names (``svn: SVN 3 is below …`` → ``svn``)."""
    match = _CHECK.match(reason)
    return match.group(1) if match else None


def statement_of(transparent_statement: bytes) -> SignedStatement | None:
    """The statement of a transparent statement (of a witnessed statement, of the Transparent
    Statement in it: a class whose platform requires witnesses ships those), if it parses."""
    try:
        return TransparentStatement.parse(unwrap_witnessed(transparent_statement)).statement
    except IronrootError:
        return None


def entry_id_of(transparent_statement: bytes) -> str | None:
    """The log entry id of a transparent statement, witnessed or not (SHA-256 of its log
    entry), if it parses."""
    statement = statement_of(transparent_statement)
    if statement is None:
        return None
    try:
        entry = statement.log_entry()
    except IronrootError:
        return None
    return hashlib.sha256(entry).hexdigest()


class FleetSource:
    """A fleet directory, read-only (module docs)."""

    def __init__(self, directory: Path) -> None:
        self.fleet = Fleet.open(directory)
        self.directory = Path(directory)
        self._admission = self.directory / ADMISSION_DIR
        self._credentials: CredentialStore | None = None

    def __repr__(self) -> str:
        return f"FleetSource({str(self.directory)!r})"

    # --- the registry -----------------------------------------------------------------------

    def counts(self) -> dict[str, int]:
        return self.fleet.status_counts()

    def classes(self) -> list[str]:
        return self.fleet.classes()

    def node_class(self, name: str) -> NodeClass:
        return self.fleet.node_class(name)

    def firmware(self, node: str) -> dict[str, str]:
        """Each component's active firmware version (``version (SVN n)``) as the RoT
        journaled it."""
        state = self.fleet.node(node).state()
        out = {}
        for name in COMPONENTS:
            image = state.component(name).image
            out[name] = f"{image.version} (SVN {image.svn})" if image is not None else "—"
        return out

    def records(
        self, *, status: str = "", node_class: str = "", query: str = ""
    ) -> list[NodeRecord]:
        """The registry's rows, filtered (status, class, a substring of the id or reason)."""
        needle = query.strip().lower()
        return [
            record
            for record in self.fleet.records()
            if (not status or record.status == status)
            and (not node_class or record.node_class == node_class)
            and (not needle or needle in record.id.lower() or needle in record.reason.lower())
        ]

    def row(self, record: NodeRecord) -> NodeRow:
        """A row of the fleet table: the record and its node's firmware (read here)."""
        try:
            return NodeRow(record, self.firmware(record.id))
        except IronrootError as exc:
            return NodeRow(record, {}, failure(exc))

    def rows(self, *, status: str = "", node_class: str = "", query: str = "") -> list[NodeRow]:
        """The fleet table, filtered (:meth:`records`)."""
        records = self.records(status=status, node_class=node_class, query=query)
        return [self.row(record) for record in records]

    def events(self, *, node: str | None = None, limit: int = 200) -> list[FleetEvent]:
        """The latest ``limit`` events (newest first), of one node or the whole fleet."""
        return list(reversed(self.fleet.events(node=node, limit=limit, latest=True)))

    def attestations(self) -> list[tuple[str, bool, int]]:
        """``(time, affirmed, count)`` of every attestation outcome the events record;
        ``count`` is how many outcomes one event stands for (a run of refused admissions
        folded into one event counts its ``count``, at its latest time)."""
        out = []
        for event in self.fleet.events(limit=100_000, latest=True):
            if event.kind in _ATTESTED_OK:
                out.append((event.at, True, 1))
            elif event.kind in _ATTESTED_BAD and (
                event.kind != "quarantined" or "ear_id" in event.detail
            ):
                out.append((event.at, False, repeats(event.detail)))
        return out

    # --- what admission keeps (public material only) ----------------------------------------

    def _verifier_key(self) -> PublicKey | None:
        path = self._admission / "verifier.pub.pem"
        if not path.is_file():
            return None
        try:
            return PublicKey.from_pem(read_limited(path, 64 * 1024))
        except IronrootError as exc:  # the fleet's file, not the reader's request: a 503
            raise StorageError(f"{path} is not the verifier's public key: {exc.detail}") from exc

    def vendor_roots(self) -> list[DiceCertificate]:
        path = self._admission / "vendor-roots.pem"
        if not path.is_file():
            return []
        from cryptography.hazmat.primitives.serialization import Encoding

        certificates = load_certificates(read_limited(path, _MAX_ROOTS), what="vendor root")
        return [parse_certificate(c.public_bytes(Encoding.DER)) for c in certificates]

    def ear_token(self, node: str, ear_id: str | None = None) -> bytes | None:
        """The node's EAR ``ear_id`` (the one its registry row names), else its latest: from
        ``fleet.db``'s ``ears`` table, where admission and the scanner keep them (read through
        a read-only connection), else ``ears/<node>.jwt``. The latest alone is not the node's
        state: a refused answer's EAR, which anyone may cause, is kept as the latest."""
        if not re.fullmatch(r"[A-Za-z0-9._-]{1,64}", node):
            return None
        database = self.fleet.database
        if database.is_file():
            import sqlite3

            try:
                with contextlib.closing(
                    sqlite3.connect(f"{database.as_uri()}?mode=ro", uri=True, timeout=5)
                ) as db:
                    row = None
                    if ear_id is not None:
                        row = db.execute(
                            "SELECT token FROM ears WHERE node = ? AND ear_id = ?", (node, ear_id)
                        ).fetchone()
                    if row is None:
                        row = db.execute(
                            "SELECT token FROM ears WHERE node = ? ORDER BY rowid DESC LIMIT 1",
                            (node,),
                        ).fetchone()
            except sqlite3.Error:
                row = None
            if row is not None:
                # a JWT kept as TEXT (or a row damaged to any other type) is still what the
                # row holds, for decode_ear to judge: never a TypeError out of the page
                token = row[0].encode() if isinstance(row[0], str) else row[0]
                if not isinstance(token, bytes):
                    token = b""
                if len(token) <= _MAX_EAR:
                    return token
        path = self._admission / "ears" / f"{node}.jwt"
        if not path.is_file():
            return None
        return read_limited(path, _MAX_EAR)

    def credentials(self) -> CredentialStore | None:
        # The credentials live in fleet.db beside the registry once admission is set up.
        if self._credentials is None and (self._admission / "config.json").is_file():
            self._credentials = CredentialStore(self.fleet.database)
        return self._credentials

    # --- a node -----------------------------------------------------------------------------

    def chain(self, node: str, *, now: dt.datetime) -> NodeChain:
        """The node's page (module docs)."""
        record = self.fleet.record_of(node)
        klass = self.fleet.node_class(record.node_class)
        checker = _Checker(self, record, klass, now)
        links = checker.run()
        return NodeChain(record, tuple(links), tuple(self.events(node=node)), checker.ear_json)


@dataclass
class _Checker:
    """One pass over a node's chain (module docs)."""

    source: FleetSource
    record: NodeRecord
    klass: NodeClass
    now: dt.datetime
    fuses: Fuses | None = None
    pfm: Pfm | None = None
    ear_json: dict[str, Any] | None = None
    _ear: Any = None
    _ear_error: str | None = None

    def run(self) -> list[Link]:
        steps: Sequence[tuple[str, str, Callable[[], Link]]] = (
            ("fuses", "Fuses", self._fuses),
            ("pfm", "PFM", self._pfm),
            ("firmware", "Firmware", self._firmware),
            ("dice", "DICE layers", self._dice),
            ("quote", "Quote", self._quote),
            ("spdm", "SPDM devices", self._spdm),
            ("ear", "EAR", self._ear_link),
            ("credential", "Credential", self._credential),
            ("keys", "Released keys", self._keys),
        )
        self._load_ear()
        links = []
        for key, name, step in steps:
            try:
                links.append(step())
            except IronrootError as exc:
                links.append(Link(key, name, FAIL, exc.detail, _check_of(exc)))
        return links

    @property
    def node(self) -> str:
        return self.record.id

    # --- fuses, PFM, firmware ---------------------------------------------------------------

    def _fuses(self) -> Link:
        fuses = self.source.fleet.rot(self.node).fuses
        self.fuses = fuses
        details = (
            f"lifecycle {fuses.lifecycle.label}, "
            f"debug {'locked' if fuses.debug_locked else 'UNLOCKED'}",
            f"vendor key hash {fuses.vendor_key_hash.hex()[:32]}…",
            f"firmware SVN fuse {fuses.svn}, anti-rollback "
            f"{'disabled' if fuses.anti_rollback_disabled else 'on'}",
            f"ECC revocation {fuses.ecc_revocation:#x}, "
            f"ML-DSA revocation {fuses.pqc_revocation:#x}",
        )
        checks = (
            (
                fuses.vendor_key_hash == self.klass.trust.vendor_key_hash,
                "vendor-key-hash",
                "the fused vendor key hash is not the class's vendor keys",
            ),
            (
                fuses.lifecycle is Lifecycle.PRODUCTION,
                "lifecycle",
                f"the lifecycle is {fuses.lifecycle.label}, not production",
            ),
            (fuses.debug_locked, "debug-unlocked", "debug is unlocked"),
            (not fuses.anti_rollback_disabled, "anti-rollback", "anti-rollback is disabled"),
        )
        for holds, check, why in checks:
            if not holds:
                return Link("fuses", "Fuses", FAIL, why, check, details)
        return Link(
            "fuses", "Fuses", OK, "production, debug locked, the vendor's key hash", None, details
        )

    def _logged(self, statement: bytes, what: str) -> str | None:
        """Verify ``statement``'s receipts under the class's transparency services; its entry
        id. ``PolicyRejected`` ``no-receipt`` without receipts, the receipt's error else (one
        issued after the chain's ``now``: ``VerificationFailed`` ``receipt-from-the-future``;
        with the trust's ``service_issuer``, one naming another service: ``UnknownIssuer``)."""
        try:
            TransparentStatement.parse(statement)
        except IronrootError as exc:
            raise PolicyRejected(f"{what} is not on a log: no receipt", code="no-receipt") from exc
        trust = self.klass.trust
        verify_transparent_statement(
            statement,
            trust.service_keys,
            require_all=False,
            issuer=trust.service_issuer,
            now=self.now.timestamp(),
        )
        return entry_id_of(statement)

    def _pfm(self) -> Link:
        if self.fuses is None:
            return Link("pfm", "PFM", UNKNOWN, "not checked: the fuses could not be read")
        platform = self.source.fleet.node(self.node)
        state = platform.state()
        image = state.pfm.image
        if image is None:
            return Link("pfm", "PFM", FAIL, "the node has no active PFM", "no-pfm")
        trust = self.klass.trust
        data = platform.active_image("pfm")
        pfm = verify_pfm(
            data,
            ecc_keys=trust.ecc_keys,
            pqc_keys=trust.pqc_keys,
            vendor_key_hash=self.fuses.vendor_key_hash,
            min_svn=state.pfm.min_svn,
            ecc_revocation=self.fuses.ecc_revocation,
            pqc_revocation=self.fuses.pqc_revocation,
        )
        if pfm.platform != trust.platform:
            raise PolicyRejected(
                f"the PFM is for {pfm.platform!r}, not {trust.platform!r}",
                code="pfm-platform-mismatch",
            )
        self.pfm = pfm
        _statements, statement = platform.evidence(image.evidence)
        if statement is None:
            raise PolicyRejected("the PFM was accepted without its statement", code="no-receipt")
        entry = self._logged(statement, "the PFM")
        parsed = TransparentStatement.parse(statement).statement
        if parsed.content_type != PFM_CONTENT_TYPE or parsed.payload != data:
            raise PolicyRejected("the logged PFM is not the active PFM", code="logged-pfm-mismatch")
        details = (
            f"PFM SVN {pfm.svn} for {pfm.platform} (floor {state.pfm.min_svn})",
            f"logged by {parsed.claims.iss}",
            "allows "
            + "; ".join(
                f"{c.name} {', '.join(v.version for v in c.versions)}" for c in pfm.components
            ),
        )
        boot = self.source.fleet.rot(self.node).boot_state
        try:
            measured = check_booted_pfm(
                hashlib.sha384(data).digest(),
                measured_pfm(boot.log) if boot is not None else None,
                what="the journal's PFM",
                advice="boot the node again (ironroot platform boot) so that its RoT measures "
                "the PFM it enforces",
            )
        except VerificationFailed as exc:
            if exc.code != "pfm-not-measured":
                # another PFM than the one the node enforces: failed, and no PFM for the
                # firmware link to hold the images to
                self.pfm = None
                raise
            # booted before PFMs were measured: neither the journal's word (green) nor a
            # failure of the PFM; the firmware is still checked against the journal's PFM
            return Link(
                "pfm", "PFM", UNKNOWN, f"not measured: boot again ({exc.detail})", exc.code, details
            )
        booted = f"measured at boot (PCR 2): {measured.hex()[:32]}… is the journal's PFM"
        return Link(
            "pfm",
            "PFM",
            OK,
            f"SVN {pfm.svn}, signed by the vendor, on the log",
            None,
            (details[0], booted, *details[1:]),
            (entry,) if entry else (),
        )

    def _firmware(self) -> Link:
        if self.fuses is None or self.pfm is None:
            return Link("firmware", "Firmware", UNKNOWN, "not checked: the fuses or PFM failed")
        platform = self.source.fleet.node(self.node)
        state = platform.state()
        active = {
            name: state.component(name).image.sha384  # type: ignore[union-attr]
            for name in COMPONENTS
            if state.component(name).image is not None
        }
        details: list[str] = []
        entries: list[str] = []
        failed: tuple[str, str, str] | None = None
        for name in COMPONENTS:
            cs = state.component(name)
            image = cs.image
            if image is None:
                failed = failed or (name, "no-image", f"{name} has no active image")
                details.append(f"{name}: no active image")
                continue
            floor = max(cs.min_svn, self.fuses.svn) if name == "bmc" else cs.min_svn
            statements, _pfm = platform.evidence(image.evidence)
            recovery = {name: cs.recovery.sha384} if cs.recovery is not None else {}
            try:
                verified = verify_update(
                    name,
                    platform.active_image(name),
                    statements,
                    trust=self.klass.trust.for_kept_evidence(),
                    fuses=self.fuses,
                    min_svn=floor,
                    active_pfm=self.pfm,
                    active_images=active,
                    now=self.now,
                    recovery_images=recovery,
                )
                try:
                    check_recovery_images(self.pfm, recovery, what="the active PFM")
                except IronrootError as exc:
                    exc.check = "pfm"
                    raise
            except IronrootError as exc:
                failed = failed or (name, _check_of(exc), exc.detail)
                details.append(f"{name} {image.version}: {_check_of(exc)}: {exc.detail}")
                continue
            reviews = f", {len(verified.reviews)} SAFE review(s)" if verified.reviews else ""
            details.append(
                f"{name} {verified.version.version} (SVN {verified.svn}, floor {floor}): "
                f"signed, in the PFM, logged by {verified.statement.claims.iss}{reviews}"
            )
            entries.extend(e for e in (entry_id_of(s) for s in statements) if e)
        if failed is not None:
            name, check, why = failed
            return Link(
                "firmware",
                "Firmware",
                FAIL,
                f"{name}: {why}",
                f"{name}: {check}",
                tuple(details),
                tuple(entries),
            )
        return Link(
            "firmware",
            "Firmware",
            OK,
            f"{len(COMPONENTS)} components signed, logged, allowed by the PFM",
            None,
            tuple(details),
            tuple(dict.fromkeys(entries)),
        )

    # --- DICE -------------------------------------------------------------------------------

    def _dice(self) -> Link:
        roots = self.source.vendor_roots()
        if not roots:
            return Link("dice", "DICE layers", UNKNOWN, "admission is not set up: no vendor roots")
        device = self.source.fleet.rot(self.node)
        details = []
        for alg, label in ((Algorithm.ES384, "ECDSA P-384"), (Algorithm.ML_DSA_87, "ML-DSA-87")):
            chain = [parse_certificate(der) for der in device.chain(alg)]
            if not chain:
                return Link("dice", "DICE layers", FAIL, f"no {label} chain", "dice-chain")
            anchored = _anchor(chain, roots)
            verify_chain(anchored)
            for cert in anchored:
                cert.check_validity(self.now)
            layers = ", ".join(
                f"{layer}: {cert.subject}" for layer, cert in zip(_DICE_LAYERS, chain, strict=False)
            )
            details.append(f"{label}: {layers}")
        return Link(
            "dice",
            "DICE layers",
            OK,
            "IDevID → LDevID → FMC alias → RT alias, to a trusted vendor root",
            None,
            tuple(details),
        )

    # --- what the verifier said -------------------------------------------------------------

    def _load_ear(self) -> None:
        token = self.source.ear_token(self.node, self.record.ear_id)
        key = self.source._verifier_key()
        if token is None or key is None:
            self._ear_error = "the node has not been attested"
            return
        try:
            self._ear = decode_ear(token, [key])
        except IronrootError as exc:
            self._ear_error = failure(exc)
            return
        result = self._ear
        self.ear_json = {
            "status": result.status.value,
            "iat": result.iat,
            "exp": result.exp,
            "submods": {
                name: {
                    "status": a.status.value,
                    "vector": a.tags(),
                    "reasons": list(a.reasons),
                }
                for name, a in sorted(result.submods.items())
            },
        }

    def _submods(self, names: Sequence[str], key: str, title: str, what: str) -> Link:
        if self._ear is None:
            return Link(key, title, UNKNOWN, self._ear_error or "no EAR")
        submods = self._ear.submods
        present = [n for n in names if n in submods]
        if not present:
            return Link(key, title, UNKNOWN, f"the EAR has no {what}")
        details = []
        failed: tuple[str, str | None, str] | None = None
        for name in present:
            appraisal = submods[name]
            vector = ", ".join(f"{c} {t}" for c, t in appraisal.tags().items())
            details.append(f"{name}: {appraisal.status.value} ({vector})")
            details.extend(f"{name}: {r}" for r in appraisal.reasons)
            if appraisal.status is not TrustTier.AFFIRMING and failed is None:
                reason = appraisal.reasons[0] if appraisal.reasons else appraisal.status.value
                check = _reason_check(reason) or appraisal.status.value
                failed = (name, check, reason)
        if failed is not None:
            name, check, reason = failed
            return Link(key, title, FAIL, f"{name}: {reason}", f"{name}: {check}", tuple(details))
        return Link(key, title, OK, f"{', '.join(present)}: affirming", None, tuple(details))

    def _quote(self) -> Link:
        return self._submods(["rot"], "quote", "Quote", "RoT appraisal")

    def _spdm(self) -> Link:
        devices = [n for n in sorted(self.klass.devices)]
        return self._submods(devices, "spdm", "SPDM devices", "device appraisal")

    def _ear_link(self) -> Link:
        if self._ear is None:
            return Link(
                "ear",
                "EAR",
                UNKNOWN if self.ear_json is None else FAIL,
                self._ear_error or "no EAR",
            )
        result = self._ear
        ear_id = self.record.ear_id or "—"
        details = (
            f"id {ear_id}",
            f"issued {utc(result.iat)}" + (f", expires {utc(result.exp)}" if result.exp else ""),
            f"verifier {result.verifier_id.developer} {result.verifier_id.build}",
        )
        if result.exp is not None and int(self.now.timestamp()) >= result.exp:
            return Link("ear", "EAR", FAIL, "the EAR has expired", "ear-expired", details)
        status = result.status
        if status is not TrustTier.AFFIRMING or any(
            a.status is not TrustTier.AFFIRMING for a in result.submods.values()
        ):
            worst = min(result.submods.values(), key=lambda a: a.status is TrustTier.AFFIRMING)
            return Link(
                "ear",
                "EAR",
                FAIL,
                f"not affirming ({worst.status.value})",
                "ear-not-affirming",
                details,
            )
        return Link("ear", "EAR", OK, "affirming, signed by the fleet's verifier", None, details)

    # --- what the node holds ----------------------------------------------------------------

    def _credential(self) -> Link:
        serial = self.record.credential_serial
        if serial is None and self.record.status == "pending":
            return Link("credential", "Credential", UNKNOWN, "none yet: the node is not admitted")
        if serial is None:
            why = "no current credential"
            if self.record.status != "admitted":
                why += f" (the node is {self.record.status}: {self.record.reason})"
            return Link("credential", "Credential", FAIL, why, "no-credential")
        store = self.source.credentials()
        found = store.status(serial) if store is not None else None
        if found is None:
            raise NotFound(
                "the registry's credential is not in the credential store",
                code="credential-unknown",
            )
        details = (
            f"serial {serial}",
            f"{found.plane} plane, EAR {found.ear_id}",
            f"valid until {found.not_after:%Y-%m-%d %H:%M:%S} UTC",
        )
        if found.revoked:
            return Link(
                "credential",
                "Credential",
                FAIL,
                f"revoked: {found.reason}",
                "credential-revoked",
                details,
            )
        if found.not_after <= self.now:
            return Link("credential", "Credential", FAIL, "expired", "credential-expired", details)
        return Link("credential", "Credential", OK, "current, unrevoked", None, details)

    def _keys(self) -> Link:
        if self.record.status == "pending":
            return Link("keys", "Released keys", UNKNOWN, "none: the node is not admitted yet")
        try:
            node_may_receive_keys(self.source.fleet, self.node, now=self.now)
        except IronrootError as exc:
            return Link("keys", "Released keys", FAIL, exc.detail, exc.code)
        return Link("keys", "Released keys", OK, "key release to its VMs is permitted")


def _anchor(
    chain: list[DiceCertificate], roots: Sequence[DiceCertificate]
) -> list[DiceCertificate]:
    """``chain`` (IDevID first) with the vendor roots that issued it prepended, root first."""
    anchored = list(chain)
    for _ in range(len(roots)):
        head = anchored[0]
        if head.issuer is not None and head.issuer_der == head.subject_der and head in roots:
            break
        issuer = next(
            (r for r in roots if r.subject_der == head.issuer_der and r is not head), None
        )
        if issuer is None:
            break
        anchored.insert(0, issuer)
        if issuer.issuer_der == issuer.subject_der:
            break
    return anchored
