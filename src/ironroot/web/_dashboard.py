"""The dashboard's model: its sources opened read-only, and what each page shows.

Each page is a method returning a plain mapping the page's template renders. Nothing here
writes to a source; the only files the dashboard writes are its own (operators, session key:
:mod:`ironroot.web._auth`).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final
from urllib.parse import quote, urlencode

from ironroot.errors import IronrootError, NotFound
from ironroot.web._auth import EndedSessions, LoginThrottle, Operators, SessionKeys
from ironroot.web._config import DashboardConfig, load_dashboard_config
from ironroot.web._fleet import FleetSource, parse_time, repeats
from ironroot.web._keys import HsmSource, apart, keyrelease_names
from ironroot.web._logs import EntryRow, LogSource, failure
from ironroot.web._svg import ChainBox, bar_chart, bucket_times, chain_svg
from ironroot.web._text import utc

__all__ = ["Alert", "Dashboard"]

_log = logging.getLogger("ironroot.web")
PAGE_SIZE: Final = 50
FLEET_PAGE_SIZE: Final = 100
"""Nodes a page of the fleet table shows: each row reads its node's firmware state (some 1 ms
a node), so a fleet of 10,000 in one page was 10 s and megabytes a view."""
REVIEWS_SHOWN: Final = 100
"""OCP SAFE reports the reviews page verifies and shows (the latest on the logs): an issuer a
log admits may register any number, each up to a statement's size in findings."""
RELEASES_SHOWN: Final = 200
"""Key release decisions the keys page lists per HSM (the latest): every ask a key release
client makes, refused or not, is an audit record, so the table would grow with the asks."""
_STATUS_COLOURS: Final = {"affirmed": "#1a7f37", "not affirmed": "#cf222e"}
_REGISTRATION_COLOURS: Final = {"entries": "#0969da"}
_SHOWN_NAME: Final = 64  # characters of a name asked for that a "not found" repeats
_FLEET_ALERTS: Final = {
    "log-fork": "critical",
    "log-unverified": "warning",
    "scan-failed": "warning",
    "scan-round-failed": "warning",
    "admission-refused": "warning",
}


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass(frozen=True, slots=True)
class Alert:
    """One thing an operator should look at."""

    severity: str  # critical, warning, info
    kind: str
    source: str
    what: str
    at: str = ""
    href: str | None = None
    moment: float | None = None
    """When it happened (POSIX seconds), what the alerts are ordered by; ``None`` for a state
    seen now (a source that cannot be read, a checkpoint that does not verify)."""


def _shown(name: str) -> str:
    """A name asked for (a link's), as a "not found" repeats it: cut to :data:`_SHOWN_NAME`
    characters, enough to tell which was asked for (a node's id or a log's name is no
    longer) and too few for a notice that anyone who writes the link writes in the page's
    red banner, on the dashboard's own origin."""
    return name if len(name) <= _SHOWN_NAME else name[:_SHOWN_NAME] + "…"


def _unique(name: str, taken: Mapping[str, object]) -> str:
    if name not in taken:
        return name
    number = 2
    while f"{name}-{number}" in taken:
        number += 1
    return f"{name}-{number}"


class Dashboard:
    """The dashboard of one data directory (module docs)."""

    def __init__(
        self, config: DashboardConfig, *, clock: Callable[[], dt.datetime] = utc_now
    ) -> None:
        self.config = config
        self.clock = clock
        self.problems: list[str] = []
        self.logs: dict[str, LogSource] = {}
        for directory in config.logs:
            name = _unique(directory.name or "log", self.logs)
            try:
                self.logs[name] = LogSource(directory, name)
            except IronrootError as exc:
                self.problems.append(f"log {directory}: {failure(exc)}")
        self.fleet: FleetSource | None = None
        if config.fleet is not None:
            try:
                self.fleet = FleetSource(config.fleet)
            except IronrootError as exc:
                self.problems.append(f"fleet {config.fleet}: {failure(exc)}")
        names, errors = keyrelease_names(config.keyrelease)
        self.problems.extend(f"key release {e}" for e in errors)
        resolved = {p.resolve(): n for p, n in names.items()}
        self.hsms = [HsmSource(d, resolved.get(d.resolve())) for d in config.hsms]
        self.operators = Operators(config.state_dir)
        self.session_keys = SessionKeys.load(config.state_dir)
        self.ended_sessions = EndedSessions(config.state_dir)
        self.throttle = LoginThrottle(config.max_failures, config.failure_window)

    def close(self) -> None:
        """Close what the dashboard keeps open (each log's store)."""
        for source in self.logs.values():
            source.close()

    @classmethod
    def open(cls, data_dir: Path | str, *, fleet: Path | None = None, **options: Any) -> Dashboard:
        """The dashboard of ``data_dir`` (:func:`ironroot.web.load_dashboard_config`); with
        ``fleet``, that fleet when the configuration names none."""
        config = load_dashboard_config(data_dir)
        if fleet is not None:
            config = config.with_fleet(Path(fleet))
        return cls(config, **options)

    @property
    def title(self) -> str:
        return self.config.title

    def now(self) -> dt.datetime:
        return self.clock()

    # --- the log (public) -------------------------------------------------------------------

    def log(self, name: str) -> LogSource:
        found = self.logs.get(name)
        if found is None:
            # cut: the 404 page is public, and a whole name from a link is a notice in its
            # banner that anyone can write on the dashboard's own origin
            raise NotFound(f"no log {_shown(name)!r} on this dashboard")
        return found

    def find_entry(self, entry_id: str) -> str | None:
        """The name of a shown log that holds the entry ``entry_id``."""
        for name, source in self.logs.items():
            try:
                source.entry(entry_id)
            except IronrootError:
                continue
            return name
        return None

    def log_index(self) -> dict[str, Any]:
        summaries = [source.summary() for source in self.logs.values()]
        points: list[tuple[int, str, int]] = []
        for source in self.logs.values():
            try:
                points.extend((t, "entries", n) for t, n in source.registrations())
            except IronrootError as exc:
                _log.warning("registrations of %s: %s", source.name, failure(exc))
        plot = bar_chart(
            bucket_times(points, ["entries"]),
            _REGISTRATION_COLOURS,
            title="Registrations over time",
        )
        return {"summaries": summaries, "plot": plot}

    def log_entries(self, name: str, page: int) -> dict[str, Any]:
        source = self.log(name)
        size = source.size()
        pages = max(1, -(-size // PAGE_SIZE))
        page = min(max(page, 1), pages)
        stop = size - (page - 1) * PAGE_SIZE
        rows = list(reversed(source.entries(max(stop - PAGE_SIZE, 0), stop)))
        return {
            "log": source,
            "summary": source.summary(),
            "rows": rows,
            "page": page,
            "pages": pages,
            "size": size,
        }

    def statement(self, log: str, entry: str) -> dict[str, Any]:
        source = self.log(log)
        return {"log": source, "statement": source.statement(entry)}

    def checkpoints(self, log: str) -> dict[str, Any]:
        source = self.log(log)
        rows = source.checkpoints()
        return {
            "log": source,
            "summary": source.summary(),
            "rows": rows,
            "witnessed": source.witnessed(),
            "all_ok": all(r.signed and r.consistent is not False for r in rows),
        }

    # --- the fleet --------------------------------------------------------------------------

    def _fleet(self) -> FleetSource:
        if self.fleet is None:
            raise NotFound("this dashboard shows no fleet")
        return self.fleet

    def overview(self) -> dict[str, Any]:
        counts = self.fleet.counts() if self.fleet is not None else None
        return {
            "counts": counts,
            "logs": [s.summary() for s in self.logs.values()],
            "alerts": self.alerts()["alerts"][:8],
            "hsms": len(self.hsms),
        }

    def fleet_page(
        self, *, status: str = "", node_class: str = "", query: str = "", page: int = 1
    ) -> dict[str, Any]:
        """The fleet page: counts, the attestation chart, and the nodes the filters match,
        :data:`FLEET_PAGE_SIZE` a page (``page`` from 1; past the last, the last)."""
        fleet = self._fleet()
        points = []
        for at, affirmed, count in fleet.attestations():
            moment = parse_time(at)
            if moment is not None:
                points.append(
                    (int(moment.timestamp()), "affirmed" if affirmed else "not affirmed", count)
                )
        plot = bar_chart(
            bucket_times(points, list(_STATUS_COLOURS)),
            _STATUS_COLOURS,
            title="Attestation results over time",
        )
        matched = fleet.records(status=status, node_class=node_class, query=query)
        size = FLEET_PAGE_SIZE
        pages = max(1, -(-len(matched) // size))
        page = min(max(page, 1), pages)
        filters = {"status": status, "class": node_class, "q": query}
        given = [(k, v) for k, v in filters.items() if v]
        return {
            "counts": fleet.counts(),
            "classes": fleet.classes(),
            "rows": [fleet.row(r) for r in matched[(page - 1) * size : page * size]],
            "matched": len(matched),
            "page": page,
            "pages": pages,
            "page_query": lambda number: "?" + urlencode([*given, ("page", number)]),
            "filters": filters,
            "plot": plot,
        }

    def node_page(self, node: str) -> dict[str, Any]:
        fleet = self._fleet()
        if len(node) > _SHOWN_NAME:  # longer than a node's id: the registry's 404 says it all
            try:
                fleet.fleet.record_of(node)
            except NotFound:
                raise NotFound(f"no node {_shown(node)!r} in the fleet") from None
        chain = fleet.chain(node, now=self.now())
        boxes = [
            ChainBox(link.key, link.name, link.status, link.summary, link.check)
            for link in chain.links
        ]
        where = {entry: self.find_entry(entry) for link in chain.links for entry in link.statements}
        return {
            "chain": chain,
            "svg": chain_svg(boxes, title=f"Chain of trust of {node}"),
            "entries": where,
        }

    # --- reviews ----------------------------------------------------------------------------

    def reviews(self) -> dict[str, Any]:
        from ironroot.firmware import FirmwareBundle
        from ironroot.platform import COMPONENTS
        from ironroot.safe import (
            SFR_COSE_CONTENT_TYPE,
            SFR_JWS_CONTENT_TYPE,
            ProviderKeys,
            inspect_report,
            review_from_statement,
        )

        providers: list[Any] = []
        deployed: dict[str, list[str]] = {}
        if self.fleet is not None:
            for name in self.fleet.classes():
                klass = self.fleet.node_class(name)
                for requirement in klass.trust.safe.values():
                    providers.extend(requirement.providers)
                for component in COMPONENTS:
                    try:
                        bundle = FirmwareBundle.parse(klass.images[component])
                    except IronrootError:
                        continue
                    deployed.setdefault(bundle.manifest_digest().hex(), []).append(
                        f"class {name}: {component}"
                    )
        keys = ProviderKeys(providers)
        groups: dict[str, list[dict[str, Any]]] = {}
        found = [
            (source, row)
            for source in self.logs.values()
            for row in source.all_entries()
            if row.content_type in (SFR_COSE_CONTENT_TYPE, SFR_JWS_CONTENT_TYPE)
        ]
        # the latest (when registered, then where in its log), newest first: what is shown
        found.sort(key=lambda pair: (pair[1].registered or 0, pair[1].index), reverse=True)
        for source, row in found[:REVIEWS_SHOWN]:
            item: dict[str, Any] = {"log": source.name, "row": row, "error": None}
            try:
                statement = source.transparent_statement(row.entry_id)
                review = review_from_statement(  # at now: expired or future-dated is red
                    statement,
                    keys,
                    service_keys=source.receipt_keys,
                    now=self.now(),
                    # the service the log's configuration names: a receipt of another is red
                    service_issuer=source.service_issuer or None,
                )
                item.update(report=review.report, provider=review.provider_kid, verified=True)
            except IronrootError as exc:
                item.update(verified=False, error=failure(exc))
                try:
                    _index, entry = source.entry(row.entry_id)
                    from ironroot.cose import SignedStatement

                    unverified = inspect_report(SignedStatement.parse(entry).payload)
                    item.update(report=unverified.report, provider=unverified.kid)
                except IronrootError:
                    item.update(report=None, provider="")
            report = item.get("report")
            digest = ""
            if report is not None:
                hashes = report.firmware_hashes()
                digest = (hashes.get("sha384") or hashes.get("sha512") or b"").hex()
            item["digest"] = digest
            groups.setdefault(digest, []).append(item)
        return {
            "groups": sorted(groups.items()),
            "deployed": deployed,
            "providers": keys.names(),
            "reports": len(found),
            "reports_shown": REVIEWS_SHOWN,
        }

    # --- keys and audit ---------------------------------------------------------------------

    def keys_page(self) -> dict[str, Any]:
        from ironroot.hsm import CHECKPOINT_CONTENT_TYPE

        logged: list[tuple[str, bytes]] = []
        for source in self.logs.values():
            for row in source.all_entries():
                if row.content_type == CHECKPOINT_CONTENT_TYPE:
                    try:
                        _index, entry = source.entry(row.entry_id)
                    except IronrootError:
                        continue
                    logged.append((f"{source.name} #{row.index}", entry))
        views = apart([hsm.view(logged) for hsm in self.hsms])
        return {"hsms": views, "releases_shown": RELEASES_SHOWN}

    # --- alerts -----------------------------------------------------------------------------

    def alerts(self) -> dict[str, Any]:
        alerts: list[Alert] = [
            Alert("warning", "configuration", "dashboard", p) for p in self.problems
        ]
        alerts.extend(self._monitor_alerts())
        alerts.extend(self._witness_alerts())
        alerts.extend(self._log_alerts())
        quarantined: list[Any] = []
        if self.fleet is not None:
            alerts.extend(self._fleet_alerts())
            quarantined = self.fleet.records(status="quarantined")  # no firmware shown
        rank = {"critical": 0, "warning": 1, "info": 2}
        # the most severe first, and in each severity what is so now, then the newest: the
        # overview shows the first eight as the latest (the times' texts are of two formats)
        alerts.sort(
            key=lambda a: (
                rank.get(a.severity, 3),
                a.moment is not None,
                -(a.moment or 0.0),
            )
        )
        return {"alerts": alerts, "quarantined": quarantined}

    def _monitor_alerts(self) -> list[Alert]:
        from ironroot.monitor import MonitorStore
        from ironroot.witness import ForkProof

        out = []
        for path in self.config.monitors:
            try:
                store = MonitorStore(path, create=False)
            except IronrootError as exc:
                out.append(Alert("warning", "monitor", path.name, failure(exc)))
                continue
            try:
                store.states()  # a state rolled back or swapped (its high-water file) warns
            except IronrootError as exc:
                out.append(Alert("warning", "monitor", path.name, failure(exc)))
            try:
                for ident, origin, proof, at in store.forks():
                    when = utc(at)
                    try:
                        fork = ForkProof.parse(proof)
                        what = (
                            f"split view of {origin}: two checkpoints that are not consistent "
                            f"(fork #{ident}, detected by {fork.detected_by or 'the monitor'})"
                        )
                    except IronrootError:
                        what = f"split view of {origin} (fork #{ident})"
                    out.append(Alert("critical", "split view", path.name, what, when, moment=at))
            except IronrootError as exc:
                out.append(Alert("warning", "monitor", path.name, failure(exc)))
            finally:
                store.close()
        return out

    def _witness_alerts(self) -> list[Alert]:
        from ironroot.witness import SqliteWitnessStore, load_witness_config

        out = []
        for directory in self.config.witnesses:
            try:
                config = load_witness_config(directory)
                store = SqliteWitnessStore(config.database)
            except IronrootError as exc:
                out.append(Alert("warning", "witness", directory.name, failure(exc)))
                continue
            try:  # a state rolled back or swapped, or evidence lost (its high-water file) warns
                store.all_latest()
            except IronrootError as exc:
                out.append(Alert("warning", "witness", directory.name, failure(exc)))
            try:
                for evidence in store.evidence():
                    when = utc(evidence.at)
                    kind = "split view" if evidence.kind == "fork" else "inconsistent checkpoint"
                    out.append(
                        Alert(
                            "critical",
                            kind,
                            f"witness {config.name}",
                            f"{evidence.origin}: {evidence.detail}",
                            when,
                            moment=evidence.at,
                        )
                    )
            except IronrootError as exc:
                out.append(Alert("warning", "witness", directory.name, failure(exc)))
            finally:
                store.close()
        return out

    def _log_alerts(self) -> list[Alert]:
        out = []
        for source in self.logs.values():
            try:
                rows = source.checkpoints(limit=1000)
            except IronrootError as exc:
                out.append(Alert("critical", "log", source.name, failure(exc)))
                continue
            for row in rows:
                if not row.signed or row.consistent is False:
                    out.append(
                        Alert(
                            "critical",
                            "inconsistent checkpoint",
                            source.name,
                            f"checkpoint of size {row.size}: {row.error}",
                        )
                    )
            witnessed = source.witnessed()
            if witnessed is not None and not witnessed.meets_quorum:
                out.append(
                    Alert(
                        "warning",
                        "witnesses",
                        source.name,
                        f"the published checkpoint has {witnessed.verified} verified "
                        f"cosignature(s); the quorum is {witnessed.quorum}"
                        + (f" ({witnessed.error})" if witnessed.error else ""),
                    )
                )
        out.extend(self._unannounced())
        return out

    def _unannounced(self) -> list[Alert]:
        """Statements on the shown logs about the fleet's products (firmware, PFMs) that the
        fleet neither runs nor was given: an issuer the class does not trust for it is an
        unannounced release (critical); a trusted issuer's is a release not yet adopted."""
        if self.fleet is None or not self.logs:
            return []
        from ironroot.web._fleet import entry_id_of, statement_of

        known: set[str] = set()
        products: dict[str, set[str]] = {}
        for name in self.fleet.classes():
            klass = self.fleet.node_class(name)
            trust = klass.trust
            for component, statements in klass.statements.items():
                for statement in statements:
                    entry = entry_id_of(statement)
                    if entry:
                        known.add(entry)
                    parsed = statement_of(statement)
                    if parsed is None:
                        continue
                    products.setdefault(parsed.claims.sub, set()).update(
                        trust.issuers_of(component)
                    )
            pfm = entry_id_of(klass.pfm_statement)
            if pfm:
                known.add(pfm)
            products.setdefault(trust.platform, set()).update(trust.issuers_of("pfm"))
        out = []
        for source in self.logs.values():
            groups: dict[tuple[str, str], list[EntryRow]] = {}
            for row in source.all_entries():
                if row.sub in products and row.entry_id not in known:
                    groups.setdefault((row.iss, row.sub), []).append(row)
            for (iss, sub), rows in groups.items():
                where = ", ".join(f"#{r.index}" for r in rows[:8]) + (" …" if len(rows) > 8 else "")
                href = f"/log/{quote(source.name, safe='')}/entries/{rows[0].entry_id}"
                if iss not in products[sub]:
                    out.append(
                        Alert(
                            "critical",
                            "unannounced release",
                            source.name,
                            f"{iss} logged {len(rows)} statement(s) about {sub}, and is not an "
                            f"issuer the fleet trusts for it (entries {where})",
                            rows[-1].registered_at,
                            href,
                            rows[-1].registered,
                        )
                    )
                else:
                    out.append(
                        Alert(
                            "info",
                            "new release",
                            source.name,
                            f"{iss} logged {len(rows)} statement(s) about {sub} that the fleet "
                            f"does not run yet (entries {where})",
                            rows[-1].registered_at,
                            href,
                            rows[-1].registered,
                        )
                    )
        return out

    def _fleet_alerts(self) -> list[Alert]:
        assert self.fleet is not None
        out = []
        for event in self.fleet.events(limit=500):
            severity = _FLEET_ALERTS.get(event.kind)
            if severity is None:
                continue
            detail = event.detail
            what = str(detail.get("reason") or detail.get("detail") or detail.get("error") or "")
            if event.kind == "admission-refused":
                what = f"evidence refused ({detail.get('error') or 'error'})"
                count = repeats(detail)
                if count > 1:  # a run of refusals folded into one event (Fleet.record_repeated)
                    what += f", {count} times since {detail.get('first_at')}"
            href = f"/fleet/nodes/{quote(event.node, safe='')}" if event.node else None
            moment = parse_time(event.at)
            out.append(
                Alert(
                    severity,
                    event.kind,
                    event.node or "fleet",
                    what or event.kind,
                    event.at,
                    href,
                    moment.timestamp() if moment is not None else None,
                )
            )
        return out
