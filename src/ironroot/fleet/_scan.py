"""Continuous scanning: every node re-attested on a schedule, and at once when the log changes.

A :class:`Scanner` decides *which* nodes to re-attest and runs the attestations with bounded
concurrency; *how* a node is attested (challenge, evidence, appraisal, credential — or
quarantine) is the ``attest`` function it is given (the fleet's admission,
:mod:`ironroot.fleet._admission`), called as ``attest(node_id, now)`` and returning the
node's registry status afterwards.

Which nodes, in one round (:meth:`Scanner.scan`):

* **due**: nodes whose last attestation is older than ``period`` seconds (default 300), less
  a per-node jitter of up to ``jitter`` × period, derived from the node id (SHA-256), so a
  fleet's rescans spread over the period instead of arriving together; nodes never attested
  are always due, and so are nodes whose last attestation is dated after ``now`` (a clock
  stepped back);
* **triggered**: when a :class:`~ironroot.monitor.Monitor` following the trusted logs reports
  new statements, every node of a class the statement concerns — its issuer publishes for the
  class (any component, PFMs), or its subject names the class's platform, its desired state,
  one of its firmware products, or (a SAFE review) the ``sha384:`` or ``sha512:`` digest,
  in any case, of the manifest of firmware the class runs: its images, and the active images
  its nodes' RoTs journaled (after an update or a rollout the class no longer runs its
  baseline images). A new revocation, SVN minimum,
  review with a new finding or reference value therefore reaches the nodes it concerns in
  the round after it is logged, not a period later.

Each round returns a :class:`ScanReport`: which nodes were attested and why, their status
after, and the ones whose attestation raised (recorded as fleet events, never fatal to the
round: ``scan-failed``, a node's failures for one reason within :data:`FAILED_WINDOW` one
event with a ``count``, its latest :data:`FAILED_KEPT` kept — a failing node is due again at
every round). :meth:`Scanner.follow` runs rounds until stopped; a round that raises a typed error
(its ``poll``, the registry, the event log) is recorded as a ``scan-round-failed`` event and
the next round runs, triggered by the statements the failed one polled too. The nodes a round
triggers are written to :data:`PENDING_FILE` in the fleet before any is attested and stay there
until an attestation of each ends, so a scanner started after a round was cut short (killed,
a crash: the monitor is already past the statements) attests them in its first round. Every
scanner of the fleet shares the file (two ``fleet serve --scan``, in two processes or
threads): each read-modify-write of it holds an exclusive ``flock`` on
``scan-pending.json.lock``, a round attests what any scanner left pending beside its own
triggers, and a node is taken off only when an attestation that took it under the token its
latest trigger wrote ends (one triggered again meanwhile — another scanner's new statement,
written down after this attestation may have begun — stays). A scanner used to read the file
once, as it started, and write its own set over it: another's triggers were lost. A
rollout triggers too: every node with a ``rollout-update`` fleet event after the one the file
says was read (its firmware changed: its attestation is not current).

:class:`LogTriggers` is the ``poll`` of a scanner that follows logs: a
:class:`~ironroot.monitor.Monitor` (its verified state in the fleet's ``monitor.db``) watching
every issuer and subject of the fleet's classes on each log URL; each poll verifies each log's
new checkpoint against the last one (consistency from the tiles) and returns the new watched
statements. A fork or a log that cannot be verified is recorded as a fleet event
(``log-fork``, ``log-unverified``) and triggers nothing. Before each poll the watch grows by
the ``sha384:`` subjects of the firmware the nodes run now (an update, a rollout); the
monitor reads the entries it verified before again for a newly watched subject, once.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import logging
import secrets
import threading
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

from ironroot._fileio import file_lock, read_limited, write_atomic
from ironroot.errors import ConfigError, IronrootError, StorageError
from ironroot.fleet._fleet import Fleet, NodeClass

__all__ = ["LogTriggers", "ScanReport", "Scanner", "affected_classes"]

_log = logging.getLogger("ironroot.fleet")

DEFAULT_PERIOD: Final = 300.0
DEFAULT_JITTER: Final = 0.1
DEFAULT_CONCURRENCY: Final = 4
FAILED_WINDOW: Final = 3600
"""Seconds within which a node's failed attestations for one reason are one ``scan-failed``
event (with a ``count``)."""
PENDING_FILE: Final = "scan-pending.json"
"""The nodes triggered in a round not finished yet (a restarted scanner attests them)."""
_MAX_PENDING: Final = 16 * 1024 * 1024
FAILED_KEPT: Final = 100
"""The ``scan-failed`` events a node keeps (the latest)."""

Attest = Callable[[str, dt.datetime], str]
"""``attest(node_id, now)`` → the node's status after (admitted, quarantined, …)."""


class StatementEvent(Protocol):
    """What the scanner needs of a monitor's statement event."""

    @property
    def iss(self) -> str | None: ...

    @property
    def sub(self) -> str | None: ...


@dataclass(frozen=True, slots=True)
class ScanReport:
    """One round: node → why it was attested (``due``/``credential``/``triggered``: a node
    admitted that does not hold its credential is ``credential``), its status after, and
    the nodes whose attestation failed with the error's code."""

    at: str
    reasons: Mapping[str, str]
    statuses: Mapping[str, str]
    failures: Mapping[str, str] = field(default_factory=dict)

    @property
    def quarantined(self) -> list[str]:
        return sorted(n for n, s in self.statuses.items() if s == "quarantined")

    def to_json(self) -> dict[str, Any]:
        return {
            "at": self.at,
            "attested": len(self.reasons),
            "reasons": dict(self.reasons),
            "statuses": dict(self.statuses),
            "failures": dict(self.failures),
            "quarantined": self.quarantined,
        }


def _firmware_subjects(manifest: bytes) -> set[str]:
    """The subjects a SAFE review of firmware with this manifest may be logged under:
    ``sha384:`` and ``sha512:`` of the manifest, lowercase hex (a review statement's subject is
    either hash of its SFR, in any case: :func:`ironroot.safe.review_from_statement`;
    compared through :meth:`ironroot.monitor.Watch.fold_subject`)."""
    return {
        "sha384:" + hashlib.sha384(manifest).hexdigest(),
        "sha512:" + hashlib.sha512(manifest).hexdigest(),
    }


def _subjects(klass: NodeClass) -> set[str]:
    """The statement subjects that concern a class: its platform, each image's product (the
    subjects of its logged statements) and ``sha384:``/``sha512:`` of each image's manifest."""
    from ironroot.cose import SignedStatement
    from ironroot.firmware import FirmwareBundle
    from ironroot.fleet._desired import desired_subject
    from ironroot.platform import unwrap_witnessed

    subjects = {klass.trust.platform, desired_subject(klass.name)}
    for name, image in klass.images.items():
        with contextlib.suppress(IronrootError):  # an image that does not parse names nothing
            subjects |= _firmware_subjects(FirmwareBundle.parse(image).manifest.encode())
        for data in klass.statements.get(name, ()):
            try:  # a witnessed statement (the platform requires witnesses): the one in it
                sub = SignedStatement.parse(unwrap_witnessed(data)).claims.sub
            except IronrootError:
                continue
            if sub:
                subjects.add(sub)
    return subjects


class _Running:
    """The ``sha384:`` subjects of the firmware a fleet's nodes run now, per class: each
    node's active images as its RoT journaled them (after an update or a rollout, not the
    class's baseline images), the manifest of each read from a node's flash once (remembered
    by the image's SHA-384). A node or image that cannot be read adds nothing: its
    attestation says why."""

    _MAX_KNOWN: Final = 4096

    def __init__(self, fleet: Fleet) -> None:
        self.fleet = fleet
        self._lock = threading.Lock()
        self._known: dict[bytes, set[str]] = {}

    def subjects(self) -> dict[str, set[str]]:
        from ironroot.firmware import FirmwareBundle
        from ironroot.platform import COMPONENTS

        out: dict[str, set[str]] = {}
        for record in self.fleet.records():
            found = out.setdefault(record.node_class, set())
            try:
                platform = self.fleet.node(record.id)
                state = platform.state()
            except IronrootError:
                continue
            for name in COMPONENTS:
                image = state.component(name).image
                if image is None:
                    continue
                with self._lock:
                    subjects = self._known.get(image.sha384)
                if subjects is None:
                    try:
                        bundle = FirmwareBundle.parse(platform.active_image(name))
                    except IronrootError:
                        continue
                    subjects = _firmware_subjects(bundle.manifest.encode())
                    with self._lock:
                        if len(self._known) >= self._MAX_KNOWN:
                            self._known.clear()
                        self._known[image.sha384] = subjects
                found |= subjects
        return out


def affected_classes(
    classes: Iterable[NodeClass],
    events: Iterable[StatementEvent],
    *,
    running: Mapping[str, Iterable[str]] | None = None,
) -> set[str]:
    """The names of the classes the statements concern (see the module docstring);
    ``running``: class -> the ``sha384:`` subjects of the firmware its nodes run now, beyond
    the class's own images."""
    from ironroot.monitor import Watch

    out: set[str] = set()
    events = list(events)
    if not events:
        return out
    for klass in classes:
        issuers = set().union(*klass.trust.issuers.values()) if klass.trust.issuers else set()
        subjects = _subjects(klass) | set((running or {}).get(klass.name, ()))
        if any((e.iss in issuers) or (Watch.fold_subject(e.sub) in subjects) for e in events):
            out.add(klass.name)
    return out


def _distinct(events: Iterable[StatementEvent]) -> list[StatementEvent]:
    """One event per (iss, sub): what triggers reads of them (bounds what a run of failed
    rounds carries)."""
    out: dict[tuple[str | None, str | None], StatementEvent] = {}
    for event in events:
        out.setdefault((event.iss, event.sub), event)
    return list(out.values())


@dataclass(frozen=True, slots=True)
class _Pending:
    """:data:`PENDING_FILE` as read: node -> the token of the trigger that wrote it down
    (``""``: a file written before tokens, or damaged), and the fleet event up to which the
    rollouts were read; not ``intact``: a file that could not be read (every node, written
    again whole)."""

    nodes: dict[str, str]
    seq: int
    intact: bool = True


class Scanner:
    """Re-attests a fleet's nodes (see the module docstring)."""

    MAX_PERIOD: Final = 30 * 86400.0
    """The longest period (seconds, a month): a timer must be able to wait it."""

    def __init__(
        self,
        fleet: Fleet,
        attest: Attest,
        *,
        period: float = DEFAULT_PERIOD,
        jitter: float = DEFAULT_JITTER,
        concurrency: int = DEFAULT_CONCURRENCY,
        maintain: Callable[[dt.datetime], object] | None = None,
    ) -> None:
        # a period is a time a timer can wait: not NaN (no comparison holds), not infinite
        numbers = all(
            isinstance(v, int | float) and not isinstance(v, bool) for v in (period, jitter)
        )
        if (
            not numbers
            or isinstance(concurrency, bool)
            or not isinstance(concurrency, int)
            or not 0 < period <= self.MAX_PERIOD
            or not 0 <= jitter < 1
            or not 1 <= concurrency <= 64
        ):
            raise ConfigError(
                f"0 < period <= {self.MAX_PERIOD:.0f} s, 0 <= jitter < 1, concurrency 1 to 64"
            )
        self.fleet = fleet
        self.attest = attest
        self.period = period
        self.jitter = jitter
        self.concurrency = concurrency
        self.maintain = maintain
        """Run after each round with its time (the service passes the credential store's
        :meth:`~ironroot.fleet.CredentialStore.prune`); a failure is logged, not the round's."""
        self._stop = threading.Event()
        self._running = _Running(fleet)
        self._pending_path = fleet.directory / PENDING_FILE
        self._lock_path = fleet.directory / (PENDING_FILE + ".lock")
        # with no file yet, the rollouts from now on are read (none recorded before)
        latest = fleet.events(latest=True, limit=1)
        self._seq = latest[0].seq if latest else 0

    def _pending_lock(self) -> contextlib.AbstractContextManager[bool]:
        """Held around every read-modify-write of :data:`PENDING_FILE` (every scanner of the
        fleet, in any process: ``flock`` on ``scan-pending.json.lock``)."""
        return file_lock(self._lock_path, "the scan's pending lock")

    def _load_pending(self) -> _Pending | None:
        """The nodes triggered in a round that did not finish (each with the token of the
        trigger that wrote it down), and the fleet's event up to which the rollouts were read
        (module docs); ``None``: no file. Read under :meth:`_pending_lock`."""
        try:
            data = read_limited(self._pending_path, _MAX_PENDING, regular=True)
        except FileNotFoundError:
            return None
        except (OSError, IronrootError) as exc:  # every node then: nothing triggered is lost
            _log.warning("%s cannot be read (%s): every node is triggered", self._pending_path, exc)
            return _Pending(dict.fromkeys((r.id for r in self.fleet.records()), ""), 0, False)
        try:
            doc = json.loads(data)
            nodes, seq = doc["nodes"], doc.get("seq", 0)
            # an event's number: SQLite holds none at 2**63 or past (OverflowError in a query)
            if isinstance(seq, bool) or not isinstance(seq, int) or not 0 <= seq < 1 << 63:
                raise ValueError("the event it read up to is not a count")
            if seq > self._last_event():  # rollouts numbered after it would never be read
                raise ValueError(f"it read up to event {seq}, past the fleet's last (restored?)")
            if isinstance(nodes, dict):  # node -> the token of its trigger
                tokens = {n: t if isinstance(t, str) else "" for n, t in nodes.items()}
            else:  # a list: written before tokens were kept
                tokens = {n: "" for n in nodes if isinstance(n, str)}
            return _Pending(tokens, seq)
        except (ValueError, TypeError, KeyError, AttributeError, RecursionError) as exc:
            _log.warning("%s is damaged (%s): every node is triggered", self._pending_path, exc)
            return _Pending(dict.fromkeys((r.id for r in self.fleet.records()), ""), 0, False)

    def _last_event(self) -> int:
        """The number of the fleet's latest event (0: none)."""
        latest = self.fleet.events(latest=True, limit=1)
        return latest[0].seq if latest else 0

    def _rolled_out(self, seq: int) -> tuple[set[str], int]:
        """The nodes with a ``rollout-update`` event after ``seq``, and the last such event: a
        rollout changed their firmware, their attestation is not current."""
        nodes: set[str] = set()
        while True:
            events = self.fleet.events(kind="rollout-update", since=seq, limit=1000)
            nodes |= {e.node for e in events if e.node is not None}
            if events:
                seq = events[-1].seq
            if len(events) < 1000:
                return nodes, seq

    def _save_pending(self, was: _Pending | None, pending: _Pending) -> None:
        """Write ``pending`` (under :meth:`_pending_lock`) unless it is ``was``, as read."""
        if was == pending:
            return
        try:
            doc = {"nodes": dict(sorted(pending.nodes.items())), "seq": pending.seq}
            write_atomic(self._pending_path, json.dumps(doc).encode())
        except OSError as exc:  # the round fails, recorded; the scanner goes on
            raise StorageError(f"{self._pending_path} cannot be written: {exc.strerror}") from exc

    def _take_pending(self, new: set[str], known: set[str]) -> dict[str, str]:
        """Write down ``new`` (each under a fresh token), the nodes a rollout updated since
        the file was read up to, beside what is pending already (any scanner's), in one
        read-modify-write under the lock; the nodes now pending (of the fleet), with their
        tokens: what this round attests."""
        with self._pending_lock():
            was = self._load_pending()
            current = was or _Pending({}, self._seq)
            rolled_out, seq = self._rolled_out(current.seq)
            nodes = {n: t for n, t in current.nodes.items() if n in known}
            for node in (new | rolled_out) & known:
                nodes[node] = secrets.token_hex(8)
            self._save_pending(was, _Pending(nodes, seq))
            self._seq = seq
            return nodes

    def _settle_pending(self, taken: Mapping[str, str], ended: Iterable[str]) -> None:
        """Take the nodes whose attestation ended off the pending ones, each only if it is
        still pending under the token this round took it with: one written down again
        meanwhile (another scanner's trigger, after this attestation may have begun) stays."""
        with self._pending_lock():
            was = self._load_pending()
            current = was or _Pending({}, self._seq)
            nodes = dict(current.nodes)
            for node in ended:
                if node in taken and nodes.get(node) == taken[node]:
                    del nodes[node]
            self._save_pending(was, _Pending(nodes, current.seq))

    def _offset(self, node_id: str) -> float:
        fraction = int.from_bytes(hashlib.sha256(node_id.encode()).digest()[:4], "big") / 2**32
        return fraction * self.jitter * self.period

    def due(self, now: dt.datetime) -> list[str]:
        """Nodes whose last attestation is older than the period (less their jitter)."""
        if now.tzinfo is None:
            raise ConfigError("now must be timezone-aware")
        out = []
        for record in self.fleet.records():
            if record.last_attested is None:
                out.append(record.id)
                continue
            try:
                last = dt.datetime.fromisoformat(record.last_attested.replace("Z", "+00:00"))
            except ValueError:
                last = None
            if last is None or last.tzinfo is None:  # damaged: not known to be recent
                _log.warning("%s: last attestation %r is no time", record.id, record.last_attested)
                out.append(record.id)
                continue
            age = (now - last).total_seconds()
            # an attestation dated after now (a clock stepped back) is not a recent one
            if age < 0 or age >= self.period - self._offset(record.id):
                out.append(record.id)
        return out

    def triggered(self, events: Iterable[StatementEvent]) -> list[str]:
        """Every node of a class the statements concern."""
        events = list(events)
        if not events:
            return []
        names = affected_classes(
            (self.fleet.node_class(c) for c in self.fleet.classes()),
            events,
            running=self._running.subjects(),
        )
        return [r.id for r in self.fleet.records() if r.node_class in names]

    def scan(self, now: dt.datetime, events: Iterable[StatementEvent] = ()) -> ScanReport:
        """One round: attest the due and the triggered nodes, ``concurrency`` at a time."""
        from ironroot.fleet._admission_state import unusable_credentials

        reasons = dict.fromkeys(self.due(now), "due")
        # admitted, but the node does not hold the credential the registry issued it (an
        # attestation killed after its admission committed): attested again at this round
        for node_id in unusable_credentials(self.fleet):
            reasons.setdefault(node_id, "credential")
        known = {r.id for r in self.fleet.records()}
        # the triggered nodes are written down before any is attested: a round cut short
        # (killed, a crash) leaves them to the next scanner, whose monitor is past them; what
        # other scanners of the fleet left pending is attested too
        taken = self._take_pending(set(self.triggered(events)), known)
        triggered = sorted(taken)
        reasons.update(dict.fromkeys(triggered, "triggered"))
        statuses: dict[str, str] = {}
        failures: dict[str, str] = {}

        def one(node_id: str) -> None:
            try:
                statuses[node_id] = self.attest(node_id, now)
            except IronrootError as exc:
                failures[node_id] = exc.code
                # due again at the next round: a run of failures for one reason is one event
                self.fleet.record_repeated(
                    node_id,
                    "scan-failed",
                    {"code": exc.code, "detail": exc.detail},
                    same="code",
                    now=now,
                    window=FAILED_WINDOW,
                    keep=FAILED_KEPT,
                )

        with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
            list(pool.map(one, sorted(reasons)))
        # a triggered node stays triggered until an attestation of it ends (its status)
        self._settle_pending(taken, statuses)
        report = ScanReport(
            now.astimezone(dt.UTC).isoformat().replace("+00:00", "Z"),
            reasons,
            statuses,
            failures,
        )
        self.fleet.record(
            None,
            "scan",
            {
                "attested": len(reasons),
                "triggered": len(triggered),
                "quarantined": report.quarantined,
                "failures": failures,
            },
            now=now,
        )
        if self.maintain is not None:
            try:
                self.maintain(now)
            except IronrootError as exc:
                _log.warning("fleet maintenance after a scan failed: %s (%s)", exc.detail, exc.code)
        return report

    def follow(
        self,
        *,
        clock: Callable[[], dt.datetime],
        poll: Callable[[], Iterable[StatementEvent]] = lambda: (),
        interval: float = 5.0,
        rounds: int | None = None,
        on_report: Callable[[ScanReport], None] | None = None,
    ) -> None:
        """Scan every ``interval`` seconds (``poll`` returns the log's new statements, e.g.
        from a monitor) until :meth:`stop` or ``rounds`` rounds."""
        done = 0
        carried: list[StatementEvent] = []
        while not self._stop.is_set() and (rounds is None or done < rounds):
            now = clock()
            events = carried
            try:
                events = _distinct([*carried, *poll()])
                report = self.scan(now, events)
            except IronrootError as exc:
                # a round that fails (its logs, the registry) is recorded and the next one
                # runs: the scanner never stops on its own while the planes serve; the
                # statements it polled (the monitor is past them) trigger the next round
                carried = events
                self._round_failed(exc, now)
            except Exception:
                # a bug: logged with its traceback under a correlation id the recorded event
                # repeats; the scanner goes on (it ending would leave the planes serving with
                # nothing re-attested, and nothing to say so), as a service answers one request
                # with a 500 and serves the next
                carried = events
                incident = secrets.token_hex(8)
                _log.exception("a scan round failed unexpectedly [correlation id %s]", incident)
                self._round_failed(
                    IronrootError(
                        f"the scan round failed unexpectedly; correlation id {incident}",
                        code="internal",
                    ),
                    now,
                    correlation_id=incident,
                )
            else:
                carried = []
                if on_report is not None:
                    on_report(report)
            done += 1
            self._stop.wait(interval)

    def _round_failed(
        self, exc: IronrootError, now: dt.datetime, *, correlation_id: str | None = None
    ) -> None:
        _log.warning("a scan round failed: %s (%s)", exc.detail, exc.code)
        detail = {"code": exc.code, "detail": exc.detail}
        if correlation_id is not None:
            detail["correlation_id"] = correlation_id
        try:
            self.fleet.record(None, "scan-round-failed", detail, now=now)
        except IronrootError as again:  # the event log itself is what fails
            _log.warning("the failed scan round was not recorded: %s", again.detail)

    def stop(self) -> None:
        self._stop.set()


class LogTriggers:
    """Statements from the logs that concern the fleet's classes (see the module docstring)."""

    def __init__(
        self,
        fleet: Fleet,
        urls: Iterable[str],
        *,
        verify: Any = True,
        clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    ) -> None:
        from ironroot.monitor import Monitor, MonitorStore, Watch

        self.fleet = fleet
        self.urls = tuple(urls)
        if not self.urls:
            raise ConfigError("give at least one log URL to follow")
        self._verify = verify
        self._clock = clock
        classes = [fleet.node_class(c) for c in fleet.classes()]
        subjects: set[str] = set()
        issuers: set[str] = set()
        for klass in classes:
            subjects |= _subjects(klass)
            from ironroot.fleet._desired import desired_subject

            subjects.add(desired_subject(klass.name))
            for names in klass.trust.issuers.values():
                issuers |= set(names)
        self.monitor = Monitor(
            MonitorStore(fleet.directory / "monitor.db"),
            watch=Watch(frozenset(subjects), frozenset(issuers)),
            name="ironroot-fleet",
        )
        self._running = _Running(fleet)

    def _watch_running(self) -> None:
        """Watch the firmware the nodes run now too (an update, a rollout): a newly watched
        subject makes the monitor read the entries it verified before again for it, once."""
        from ironroot.monitor import Watch

        running = set().union(*self._running.subjects().values())
        watch = self.monitor.watch
        if not running <= watch.subjects:
            self.monitor.watch = Watch(watch.subjects | running, watch.issuers)

    def poll(self) -> list[Any]:
        """The new watched statements on every log since the last poll."""
        from ironroot.log import HttpLogFetcher

        self._watch_running()
        found: list[Any] = []
        for url in self.urls:
            try:
                with HttpLogFetcher(url, verify=self._verify) as fetcher:
                    events = self.monitor.check(url, fetcher)
            except IronrootError as exc:
                kind = "log-fork" if exc.code == "fork-detected" else "log-unverified"
                self.fleet.record(
                    None,
                    kind,
                    {"url": url, "code": exc.code, "detail": exc.detail},
                    now=self._clock(),
                )
                continue
            for event in events:
                if event.kind == "fork":
                    self.fleet.record(
                        None, "log-fork", {"url": url, "detail": event.detail}, now=self._clock()
                    )
                elif event.kind == "statement":
                    found.append(event)
        return found
