"""Rollout: bring a class's nodes to the desired firmware, in waves, through the platform's
receipt-gated update, stopping at the first failure.

:func:`rollout` plans first, touching nothing: the desired state in force (verified again:
receipts, signers, quorum), then per node the components whose active image (as the RoT
journaled it) is not the desired one, and whether its active PFM is the desired one. A node
with nothing to change is **skipped**; a node with an update in progress (cut short by a power
loss, even after its activation) is not: that component's update is refused (``Conflict``
``update-in-progress``: boot the node first) and stops the rollout. Every bundle and PFM the
plan needs must be found in ``releases`` by its SHA-384 before anything starts (``NotFound``
``release-missing``), and a node whose state cannot be read stops the rollout before it
starts (its error is raised). Its arguments are checked before it plans: ``nodes`` (the nodes
to consider, default every node of the class) names each node once and only nodes of the class
(``ConfigError``: a repeated or foreign node is refused, never dropped or run twice).

The nodes to change are cut into waves of ``wave_size`` (registry order, or the order of
``nodes``). Before anything is installed on a node, every update it needs is checked, in
install order, by the platform's own check-only preflight
(:meth:`ironroot.platform.Platform.preflight`: the checks of the update, each as the node
would see it once the earlier ones were committed, changing nothing). The first refusal
refuses the node **as a whole**: nothing is installed, the refused update carries its typed
error (``error``, ``code``, ``detail``, ``check``), the others are ``withheld``, and the node is
``failed``. Then the node is updated component by component (``bmc``, ``host``, ``nic``,
``gpu``, ``nvme``) with :meth:`ironroot.platform.Platform.update` — every check of the platform
layer applies again, on the staged bytes: signatures, PFM, SVN floor, receipts from the node's
trusted logs, SAFE reviews — the first update carrying the desired PFM when the node's differs
(a PFM alone rides on an update of the BMC to its desired image). An update that is
**refused** (the check's typed error) or that **rolls back** (the new firmware failed its
health check), or a node that does not end at the desired firmware and PFM, stops the rollout:
the rest of that wave and every later wave are **not reached**.
So does a newer desired state put in force while the rollout runs: before each wave the version
in force is read again, and when it is not the one planned, that wave and the later ones are
not reached (``superseded_by``: the version now in force, which its own rollout installs). Each
update and the stop are recorded in the fleet's event log (``rollout-update``, ``rollout``).

Each component's update is its own atomic switch in the RoT; there is no transaction across a
node's components. A failure only the install meets (flash, evidence store, health check) after
an earlier update of the node was committed leaves that earlier one installed: the node is
reported **mixed** (:attr:`NodeRollout.mixed`, with what each planned component runs in
:attr:`NodeRollout.installed`; :attr:`RolloutReport.mixed`; ``mixed`` in the ``rollout``
event), and reconcile reports its drift. A power loss (:class:`ironroot.platform.PowerLost`)
raises out of the rollout; the node's next boot decides the update from its journal, and a
rollout resumed before that boot stops at the node (``update-in-progress``).
A rollout killed between starting a node's updates and recording their outcome leaves a
marker (``rollout-inflight/<node>.json`` in the class's desired-state folder); the next rollout
that covers the node (every node of the class, or ``nodes`` naming it) records a
``rollout-interrupted`` event for it before it plans and reports the node in
:attr:`RolloutReport.interrupted`, so no node is left part-updated without a record. Each
marker carries a random id, recorded in its event: a marker whose event was committed before
a kill or a power cut kept the marker is reported, never recorded twice.

:class:`ReleaseSet` holds the bundles and PFMs by digest: from a node class
(:meth:`ReleaseSet.of_class`), from directories (:meth:`ReleaseSet.load`: each ``NAME.bin``
is a bundle whose transparent statements are ``NAME.ts`` and ``NAME.<anything>.ts``, each
``NAME.pfm`` a signed PFM with its transparent statement ``NAME.pfm.ts``; a statement file
belongs to the longest bundle name it extends; of a statement ``X.ts`` witnessed beside it,
``X.ts.witnessed``, the witnessed one is taken, docs/platform.md "Witnesses"), or added one
by one.

``allow_recovery_removal`` names the components whose recovery image the desired PFM may stop
listing: the operator's explicit acceptance, per component, passed to every preflight check
and update of the rollout (``allow_recovery_removal`` of
:meth:`ironroot.platform.Platform.update`). Without it a desired PFM that drops a recovery image
a node still holds is refused at that node's preflight (``PolicyRejected``
``pfm-drops-recovery-image``, check ``pfm``), as the platform's own update refuses it; naming
another component accepts nothing for this one. A name that is not a component is a
``ConfigError`` before anything is planned. The names are recorded in the ``rollout`` event.

A bundle the plan needs that is signed with a vendor key the desired state revokes
(:attr:`ironroot.fleet.FuseTarget.ecc_revoked`, ``pqc_revoked``) is refused, ``KeyRevoked``,
before any node is updated (a dry run too): a node whose fuses lag the desired state would
still boot it.

``inject`` (node -> a fault of :class:`ironroot.platform.Faults`, e.g. ``fail-health``) is
for drills: that node's updates run with the fault, so a rollout's stop can be rehearsed.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import secrets
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from ironroot._fileio import DirectoryLock, make_dirs, read_limited, write_atomic
from ironroot.errors import ConfigError, IronrootError, NotFound
from ironroot.fleet._desired import DesiredState, DesiredStore
from ironroot.platform import COMPONENTS, Faults

if TYPE_CHECKING:
    from ironroot.fleet._fleet import Fleet, NodeClass, NodeRecord
    from ironroot.platform import Platform

__all__ = [
    "ComponentUpdate",
    "NodeRollout",
    "ReleaseSet",
    "RolloutReport",
    "rollout",
]

_MAX_FILE: Final = 64 * 1024 * 1024
_MAX_STATEMENT: Final = 4 * 1024 * 1024
_WITNESSED: Final = ".witnessed"
_OUTCOMES: Final = ("updated", "failed", "skipped", "not-reached", "planned")
_NO_NODE: Final = "give at least one node (no list: every node of the class)"


class ReleaseSet:
    """Signed bundles and PFMs with their transparent statements, found by SHA-384."""

    def __init__(self) -> None:
        self._bundles: dict[bytes, tuple[bytes, tuple[bytes, ...]]] = {}
        self._pfms: dict[bytes, tuple[bytes, bytes]] = {}

    def __repr__(self) -> str:
        return f"ReleaseSet({len(self._bundles)} bundles, {len(self._pfms)} PFMs)"

    def add_bundle(self, bundle: bytes, statements: Sequence[bytes]) -> bytes:
        """Add a bundle and its statements; return its SHA-384."""
        digest = hashlib.sha384(bundle).digest()
        self._bundles[digest] = (bytes(bundle), tuple(statements))
        return digest

    def add_pfm(self, pfm: bytes, statement: bytes) -> bytes:
        """Add a signed PFM and its transparent statement; return its SHA-384."""
        digest = hashlib.sha384(pfm).digest()
        self._pfms[digest] = (bytes(pfm), bytes(statement))
        return digest

    def bundle(self, component: str, sha384: bytes) -> tuple[bytes, tuple[bytes, ...]]:
        found = self._bundles.get(sha384)
        if found is None:
            raise NotFound(
                f"no {component} bundle with SHA-384 {sha384.hex()[:16]}… among the releases",
                code="release-missing",
            )
        return found

    def pfm(self, sha384: bytes) -> tuple[bytes, bytes]:
        found = self._pfms.get(sha384)
        if found is None:
            raise NotFound(
                f"no PFM with SHA-384 {sha384.hex()[:16]}… among the releases",
                code="release-missing",
            )
        return found

    @classmethod
    def of_class(cls, node_class: NodeClass) -> ReleaseSet:
        """The class's own images, statements and PFM."""
        releases = cls()
        for name in COMPONENTS:
            releases.add_bundle(node_class.images[name], node_class.statements.get(name, ()))
        releases.add_pfm(node_class.pfm, node_class.pfm_statement)
        return releases

    def load(self, directory: Path | str) -> ReleaseSet:
        """Add every release in ``directory`` (module docs); return ``self``."""
        base = Path(directory)
        if not base.is_dir():
            raise ConfigError(f"{base} is not a directory of releases")
        bundles = sorted(p.name.removesuffix(".bin") for p in base.glob("*.bin") if p.is_file())
        pfms = sorted(p.name.removesuffix(".pfm") for p in base.glob("*.pfm") if p.is_file())
        statements = _statement_files(base)
        owned: dict[str, list[bytes]] = {name: [] for name in bundles}
        for stem, path in sorted(statements.items()):
            if stem.endswith(".pfm"):
                continue
            owners = [n for n in bundles if stem == n or stem.startswith(n + ".")]
            if owners:
                owned[max(owners, key=len)].append(read_limited(path, _MAX_STATEMENT))
        for name in bundles:
            self.add_bundle(read_limited(base / f"{name}.bin", _MAX_FILE), owned[name])
        for name in pfms:
            statement = statements.get(f"{name}.pfm")
            if statement is None:
                raise ConfigError(
                    f"{base / (name + '.pfm')} has no statement {name}.pfm.ts "
                    f"(nor {name}.pfm.ts{_WITNESSED})"
                )
            self.add_pfm(
                read_limited(base / f"{name}.pfm", _MAX_FILE),
                read_limited(statement, _MAX_STATEMENT),
            )
        return self


def _statement_files(base: Path) -> dict[str, Path]:
    """The statement files of a releases directory by stem (``X`` of ``X.ts``): ``X.ts``, or
    ``X.ts.witnessed`` beside or instead of it (what ``ironroot statement witness X.ts``
    writes), which is the one taken — a platform that requires witnesses takes only it, and
    one that does not takes it as the Transparent Statement in it."""
    found = {p.name.removesuffix(".ts"): p for p in base.glob("*.ts") if p.is_file()}
    for path in base.glob(f"*.ts{_WITNESSED}"):
        if path.is_file():
            found[path.name.removesuffix(f".ts{_WITNESSED}")] = path
    return found


@dataclass(frozen=True, slots=True)
class ComponentUpdate:
    """One update a rollout ran (or planned): ``outcome`` is ``committed``, ``rolled-back``,
    ``refused`` (``error``/``code``/``detail``/``check`` of the refusal: the typed error's class
    name, its code and sentence, the platform check that refused it), ``withheld`` (not
    installed: another update of its node was refused before any was installed) or
    ``planned``."""

    component: str
    from_version: str | None
    to_version: str
    outcome: str
    with_pfm: bool = False
    code: str | None = None
    detail: str = ""
    check: str | None = None
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "component": self.component,
            "from": self.from_version,
            "to": self.to_version,
            "outcome": self.outcome,
            "with_pfm": self.with_pfm,
            "code": self.code,
            "detail": self.detail,
            "check": self.check,
            "error": self.error,
        }


@dataclass(frozen=True, slots=True)
class NodeRollout:
    """One node in a rollout: its wave (``None`` when skipped), ``outcome`` (one of
    ``updated``, ``failed``, ``skipped``, ``not-reached``, ``planned``) and its updates.
    ``mixed``: a failed node on which an earlier update was committed before a later one
    failed at install, so it runs neither its old nor its desired firmware; ``installed`` then
    names what each component the rollout planned for it runs (component, version)."""

    node: str
    wave: int | None
    outcome: str
    updates: tuple[ComponentUpdate, ...] = ()
    detail: str = ""
    mixed: bool = False
    installed: tuple[tuple[str, str | None], ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "node": self.node,
            "wave": self.wave,
            "outcome": self.outcome,
            "detail": self.detail,
            "mixed": self.mixed,
            "installed": dict(self.installed),
            "updates": [u.to_json() for u in self.updates],
        }


@dataclass(frozen=True, slots=True)
class RolloutReport:
    """What a rollout did: every node's outcome, and where it stopped (``stopped_at``: the
    failed node; ``superseded_by``: the version of the desired state put in force while it
    ran, before the wave it did not start; both ``None`` when every wave finished)."""

    node_class: str
    desired_version: int
    wave_size: int
    waves: int
    nodes: tuple[NodeRollout, ...]
    stopped_at: str | None = None
    dry_run: bool = False
    superseded_by: int | None = None
    interrupted: tuple[str, ...] = ()  # nodes an earlier rollout was cut short on

    @property
    def ok(self) -> bool:
        return self.stopped_at is None and self.superseded_by is None

    def with_outcome(self, outcome: str) -> tuple[str, ...]:
        return tuple(n.node for n in self.nodes if n.outcome == outcome)

    @property
    def mixed(self) -> tuple[str, ...]:
        """The nodes left mixed: some of their updates committed, a later one failed."""
        return tuple(n.node for n in self.nodes if n.mixed)

    def node(self, node_id: str) -> NodeRollout:
        for node in self.nodes:
            if node.node == node_id:
                return node
        raise NotFound(f"no node {node_id!r} in the rollout")

    def to_json(self) -> dict[str, Any]:
        counts = {o: len(self.with_outcome(o)) for o in _OUTCOMES}
        return {
            "class": self.node_class,
            "desired_version": self.desired_version,
            "wave_size": self.wave_size,
            "waves": self.waves,
            "dry_run": self.dry_run,
            "ok": self.ok,
            "stopped_at": self.stopped_at,
            "superseded_by": self.superseded_by,
            "mixed": list(self.mixed),
            "interrupted": list(self.interrupted),
            "counts": counts,
            "nodes": [n.to_json() for n in self.nodes],
        }


@dataclass(frozen=True, slots=True)
class _Plan:
    node: str
    components: tuple[tuple[str, str | None], ...]  # (component, version now)
    pfm: bool


def _plan(fleet: Fleet, node_id: str, desired: DesiredState) -> _Plan:
    state = fleet.node(node_id).state()
    # An update cut short after its activation (a power loss before the boot that decides
    # it) leaves the new image active but not health-checked nor committed: not there yet.
    undecided = state.pending.component if state.pending is not None else None
    todo: list[tuple[str, str | None]] = []
    for name in COMPONENTS:
        image = state.component(name).image
        if image is None or image.sha384 != desired.firmware[name].sha384 or name == undecided:
            todo.append((name, image.version if image is not None else None))
    active_pfm = state.pfm.image
    pfm = active_pfm is None or active_pfm.sha384 != desired.pfm.sha384
    if pfm and not todo:
        image = state.component("bmc").image
        todo.append(("bmc", image.version if image is not None else None))
    return _Plan(node_id, tuple(todo), pfm)


def _converged(fleet: Fleet, node_id: str, desired: DesiredState) -> str:
    """Why ``node_id`` is not at the desired firmware and PFM ("" when it is)."""
    plan = _plan(fleet, node_id, desired)
    if plan.pfm:
        return "its active PFM is not the desired one"
    if plan.components:
        return "not at the desired firmware: " + ", ".join(c for c, _ in plan.components)
    return ""


def _named(ids: Sequence[str]) -> str:
    """Node ids for a message: the first few, and how many more."""
    shown = ", ".join(ids[:5])
    return shown if len(ids) <= 5 else f"{shown} and {len(ids) - 5} more"


def _recovery_removal(names: Sequence[str]) -> tuple[str, ...]:
    """The components ``allow_recovery_removal`` names, checked (module docs)."""
    if isinstance(names, str | bytes) or not all(isinstance(n, str) for n in names):
        raise ConfigError("allow_recovery_removal is a list of component names")
    unknown = [n for n in names if n not in COMPONENTS]
    if unknown:
        raise ConfigError(
            f"allow_recovery_removal names a component: {unknown[0][:32]!r} is not one of "
            + ", ".join(COMPONENTS)
        )
    return tuple(dict.fromkeys(names))


def rollout_selection(
    fleet: Fleet,
    *,
    node_class: str | None = None,
    wave_size: int = 1,
    nodes: Sequence[str] | None = None,
    inject: Mapping[str, str] | None = None,
    allow_recovery_removal: Sequence[str] = (),
) -> tuple[str, list[NodeRecord]]:
    """The class a rollout with these arguments rolls out and the records of the nodes it
    covers (registry order without ``nodes``, else as given), every argument checked and
    nothing changed: ``ConfigError`` for a wave size under 1, an unknown fault, an empty
    ``nodes`` (``None`` is every node of the class), a node given twice or a node of another
    class, a fault injected in a node the rollout does not cover,
    an ``allow_recovery_removal`` name that is not a component;
    ``NotFound`` for an unknown class or node. Only ``None`` means the fleet's first class:
    an empty name is a class the fleet does not have, not a default."""
    if isinstance(wave_size, bool) or not isinstance(wave_size, int) or wave_size < 1:
        raise ConfigError("the wave size is 1 or more")
    _recovery_removal(allow_recovery_removal)
    name = fleet.classes()[0] if node_class is None else node_class
    fleet.node_class(name)  # NotFound for a class the fleet does not have
    for node_id, step in (inject or {}).items():
        Faults(step)  # ConfigError for an unknown fault
        fleet.record_of(node_id)
    if nodes is None:
        records = [r for r in fleet.records() if r.node_class == name]
    elif not nodes:  # a caller's query that found nothing: not a rollout of nothing
        raise ConfigError(_NO_NODE)
    else:
        records = [fleet.record_of(n) for n in dict.fromkeys(nodes)]  # NotFound: unknown one
        if len(records) != len(nodes):
            counts = Counter(nodes)
            repeated = [r.id for r in records if counts[r.id] > 1]
            raise ConfigError(f"a node is given once: {_named(repeated)} given more than once")
        foreign = [r.id for r in records if r.node_class != name]
        if foreign:
            raise ConfigError(f"every node given must be of class {name}: {_named(foreign)} is not")
    covered = {r.id for r in records}
    outside = [n for n in (inject or {}) if n not in covered]
    if outside:
        raise ConfigError(
            f"a fault is injected only in a node the rollout covers: {_named(outside)} is not"
        )
    return name, records


def rollout(
    fleet: Fleet,
    releases: ReleaseSet,
    *,
    now: dt.datetime,
    node_class: str | None = None,
    wave_size: int = 1,
    nodes: Sequence[str] | None = None,
    dry_run: bool = False,
    inject: Mapping[str, str] | None = None,
    progress: Callable[[str, str, str | None], None] | None = None,
    allow_recovery_removal: Sequence[str] = (),
) -> RolloutReport:
    """Roll ``node_class`` (default: the fleet's first class) out to its desired state in
    force, in waves of ``wave_size`` (module docs). ``nodes`` limits it to those nodes;
    ``dry_run`` plans and reports without updating; ``progress(event, node, component)`` is
    called with ``update`` before each update and ``done`` after each node;
    ``allow_recovery_removal`` the components whose recovery image the desired PFM may stop
    listing (module docs).

    Each node in ``nodes`` is given once and is of the class (``ConfigError`` otherwise, an
    unknown one ``NotFound``), checked before anything is planned or updated: a list that
    repeats a node or names one of another class is a mistake of its caller's, refused
    rather than guessed at."""
    name, records = rollout_selection(
        fleet,
        node_class=node_class,
        wave_size=wave_size,
        nodes=nodes,
        inject=inject,
        allow_recovery_removal=allow_recovery_removal,
    )
    allowed = _recovery_removal(allow_recovery_removal)
    store = DesiredStore(fleet)
    desired = store.current(name, now=now).state
    faults = dict(inject or {})
    with DirectoryLock(store.directory / name, ".rollout.lock", what=f"rollout of class {name}"):
        covered = None if nodes is None else {r.id for r in records}
        interrupted = (
            () if dry_run else _report_interrupted(fleet, store, name, desired, now, covered)
        )
        plans = [_plan(fleet, r.id, desired) for r in records]
        # Every release the plan needs is found, and none is signed with a vendor key the
        # desired state revokes, before anything changes.
        for plan in plans:
            for component, _ in plan.components:
                bundle, _statements = releases.bundle(component, desired.firmware[component].sha384)
                desired.fuses.check_bundle(bundle)
            if plan.pfm:
                releases.pfm(desired.pfm.sha384)
        todo = [p for p in plans if p.components]
        waves = [todo[i : i + wave_size] for i in range(0, len(todo), wave_size)]
        wave_of = {p.node: number for number, wave in enumerate(waves, 1) for p in wave}
        outcome: dict[str, NodeRollout] = {
            p.node: NodeRollout(p.node, None, "skipped") for p in plans if not p.components
        }
        stopped: str | None = None
        superseded: int | None = None
        started = 0
        for plan in todo:
            wave = wave_of[plan.node]
            if not dry_run and stopped is None and superseded is None and wave > started:
                # Before each wave: a desired state put in force meanwhile (a fix, a revert)
                # supersedes this one; its own rollout installs it, this one stops here.
                in_force = store.version(name)
                if in_force != desired.version:
                    superseded = in_force
                started = wave
            if dry_run or stopped is not None or superseded is not None:
                updates = tuple(
                    ComponentUpdate(
                        c,
                        v,
                        desired.firmware[c].version,
                        "planned",
                        with_pfm=plan.pfm and i == 0,
                    )
                    for i, (c, v) in enumerate(plan.components)
                )
                state = "planned" if dry_run else "not-reached"
                outcome[plan.node] = NodeRollout(plan.node, wave, state, updates)
                continue
            marker = _inflight(store, name) / f"{plan.node}.json"
            make_dirs(marker.parent)
            write_atomic(
                marker,
                json.dumps(
                    {
                        "desired_version": desired.version,
                        "wave": wave,
                        "components": [c for c, _ in plan.components],
                        "id": secrets.token_hex(16),  # this marker, in its event
                    }
                ).encode(),
                mode=0o644,
            )
            result = _update_node(
                fleet, releases, plan, desired, wave, now, faults.get(plan.node), progress, allowed
            )
            marker.unlink()  # its outcome is recorded: a kill before this is reported next time
            outcome[plan.node] = result
            if result.outcome == "failed":
                stopped = plan.node
            if progress is not None:
                progress("done", plan.node, None)
    report = RolloutReport(
        name,
        desired.version,
        wave_size,
        len(waves),
        tuple(outcome[p.node] for p in plans),
        stopped,
        dry_run,
        superseded,
        interrupted,
    )
    if not dry_run:
        fleet.record(
            None,
            "rollout",
            {
                "class": name,
                "desired_version": desired.version,
                "wave_size": wave_size,
                "waves": len(waves),
                "updated": list(report.with_outcome("updated")),
                "skipped": len(report.with_outcome("skipped")),
                "stopped_at": stopped,
                "mixed": list(report.mixed),
                "superseded_by": superseded,
                "not_reached": list(report.with_outcome("not-reached")),
                "interrupted": list(interrupted),
                "allow_recovery_removal": list(allowed),
            },
            now=now,
        )
    return report


def _inflight(store: DesiredStore, node_class: str) -> Path:
    return store.directory / node_class / "rollout-inflight"


def _report_interrupted(
    fleet: Fleet,
    store: DesiredStore,
    node_class: str,
    desired: DesiredState,
    now: dt.datetime,
    covered: set[str] | None = None,
) -> tuple[str, ...]:
    """The nodes an earlier rollout of ``node_class`` was cut short on (killed, or a power
    loss raised out of it) between starting their updates and recording their outcome: each
    gets a ``rollout-interrupted`` event — what it was to install, and what it still lacks of
    ``desired`` as its RoT journaled it — before anything is planned, so no node is left
    part-updated without a record. With ``covered`` (a rollout of the nodes given), only
    those nodes' markers: the others wait for a rollout that covers them (a node's own
    rollout neither reads its peers' state nor takes their report from the operator)."""
    folder = _inflight(store, node_class)
    if not folder.is_dir():
        return ()
    found: list[str] = []
    for marker in sorted(folder.glob("*.json")):
        node = marker.name[: -len(".json")]
        if covered is not None and node not in covered:
            continue
        detail: dict[str, Any] = {"class": node_class}
        try:
            started = json.loads(read_limited(marker, 64 * 1024))
            if not isinstance(started, dict):
                raise ValueError("not a map")
            detail["started"] = started
        except (OSError, ValueError, RecursionError, IronrootError) as exc:
            detail["started"] = None
            detail["marker_error"] = str(exc)[:200]
        try:
            plan = _plan(fleet, node, desired)
            detail["remaining"] = [c for c, _ in plan.components]
            detail["pfm_remaining"] = plan.pfm
        except IronrootError as exc:
            detail["remaining"] = None
            detail["error"] = exc.code
        try:
            fleet.record_of(node)
        except NotFound:
            detail["unknown_node"] = True
            fleet.record(None, "rollout-interrupted", {"node": node, **detail}, now=now)
        else:
            # Recorded already when a rollout was killed between its event and the marker's
            # removal (or a power cut brought the removed marker back): the latest event of
            # the node carries this marker's id.
            if not _recorded(fleet, node, detail["started"]):
                fleet.record(node, "rollout-interrupted", detail, now=now)
        marker.unlink()
        found.append(node)
    return tuple(found)


def _recorded(fleet: Fleet, node: str, started: object) -> bool:
    """Whether ``node``'s latest ``rollout-interrupted`` event is that of the marker
    ``started`` (by its id; a marker without one, from an earlier version, never is)."""
    marker = started.get("id") if isinstance(started, dict) else None
    if not isinstance(marker, str) or not marker:
        return False
    latest = fleet.events(node=node, kind="rollout-interrupted", latest=True, limit=1)
    recorded = latest[0].detail.get("started") if latest else None
    return isinstance(recorded, dict) and recorded.get("id") == marker


def _update_node(
    fleet: Fleet,
    releases: ReleaseSet,
    plan: _Plan,
    desired: DesiredState,
    wave: int,
    now: dt.datetime,
    fault: str | None,
    progress: Callable[[str, str, str | None], None] | None,
    allowed: tuple[str, ...],
) -> NodeRollout:
    platform = fleet.node(plan.node)
    steps: list[_Step] = []
    for i, (component, version) in enumerate(plan.components):
        target = desired.firmware[component]
        bundle, statements = releases.bundle(component, target.sha384)
        carry = plan.pfm and i == 0
        pfm, pfm_statement = releases.pfm(desired.pfm.sha384) if carry else (None, None)
        steps.append(
            _Step(component, version, target.version, bundle, statements, pfm, pfm_statement)
        )
    refused = _preflight(platform, steps, now, allowed)
    if refused is not None:
        return _refused_whole(fleet, plan.node, wave, steps, refused, now)
    done: list[ComponentUpdate] = []
    for step in steps:
        if progress is not None:
            progress("update", plan.node, step.component)
        try:
            result = platform.update(
                step.component,
                step.bundle,
                step.statements,
                now=now,
                pfm=step.pfm,
                pfm_statement=step.pfm_statement,
                faults=Faults(fault) if fault is not None else None,
                allow_recovery_removal=allowed,
            )
        except IronrootError as exc:
            update = step.outcome("refused", exc)
        else:
            update = step.outcome(result.outcome)
        done.append(update)
        fleet.record(plan.node, "rollout-update", {"wave": wave, **update.to_json()}, now=now)
        if update.outcome != "committed":
            return _failed(
                fleet,
                plan.node,
                wave,
                steps,
                done,
                f"{step.component} {update.outcome}: {update.code}",
                now,
            )
    why = _converged(fleet, plan.node, desired)
    if why:
        fleet.record(plan.node, "rollout-update", {"wave": wave, "not_converged": why}, now=now)
        return _failed(fleet, plan.node, wave, steps, done, why, now)
    return NodeRollout(plan.node, wave, "updated", tuple(done))


@dataclass(frozen=True, slots=True)
class _Step:
    """One update of a node's rollout, with the release it installs."""

    component: str
    from_version: str | None
    to_version: str
    bundle: bytes
    statements: tuple[bytes, ...]
    pfm: bytes | None
    pfm_statement: bytes | None

    def outcome(self, outcome: str, exc: IronrootError | None = None) -> ComponentUpdate:
        code, detail = None, ""
        if exc is not None:
            code, detail = exc.code, exc.detail
        elif outcome == "rolled-back":
            code, detail = outcome, "the new firmware failed its health check"
        elif outcome == "withheld":
            detail = "not installed: another update of the node was refused first"
        return ComponentUpdate(
            self.component,
            self.from_version,
            self.to_version,
            outcome,
            self.pfm is not None,
            code,
            detail,
            exc.check if exc is not None else None,
            type(exc).__name__ if exc is not None else None,
        )


def _preflight(
    platform: Platform, steps: Sequence[_Step], now: dt.datetime, allowed: tuple[str, ...]
) -> tuple[int, IronrootError] | None:
    """The first of ``steps`` the platform's checks refuse, checked one after another as the
    node would install them and changing nothing (:meth:`Platform.preflight`), with its
    error; ``None`` when every one passes."""
    try:
        preflight = platform.preflight(now=now)
    except IronrootError as exc:
        return 0, exc
    for i, step in enumerate(steps):
        try:
            preflight.check(
                step.component,
                step.bundle,
                step.statements,
                pfm=step.pfm,
                pfm_statement=step.pfm_statement,
                allow_recovery_removal=allowed,
            )
        except IronrootError as exc:
            return i, exc
    return None


def _refused_whole(
    fleet: Fleet,
    node: str,
    wave: int,
    steps: Sequence[_Step],
    refused: tuple[int, IronrootError],
    now: dt.datetime,
) -> NodeRollout:
    """A node refused as a whole before anything was installed: the refused update with its
    typed error, every other one ``withheld``."""
    index, exc = refused
    updates = tuple(
        step.outcome("refused", exc) if i == index else step.outcome("withheld")
        for i, step in enumerate(steps)
    )
    update = updates[index]
    fleet.record(
        node,
        "rollout-update",
        {"wave": wave, "before_install": True, **update.to_json()},
        now=now,
    )
    return NodeRollout(
        node,
        wave,
        "failed",
        updates,
        f"{update.component} refused: {update.code} (checked before installing: nothing installed)",
    )


def _failed(
    fleet: Fleet,
    node: str,
    wave: int,
    steps: Sequence[_Step],
    done: Sequence[ComponentUpdate],
    why: str,
    now: dt.datetime,
) -> NodeRollout:
    """A node whose install failed after its preflight passed. When an earlier update of it
    was committed it is **mixed** (neither its old nor its desired firmware): ``installed``
    says what each planned component runs now, as the RoT journaled it."""
    committed = [u.component for u in done if u.outcome == "committed"]
    if not committed:
        return NodeRollout(node, wave, "failed", tuple(done), why)
    installed: list[tuple[str, str | None]] = []
    try:
        state = fleet.node(node).state()
    except IronrootError as exc:
        why += f"; its state cannot be read ({exc.code})"
    else:
        for step in steps:
            image = state.component(step.component).image
            installed.append((step.component, image.version if image is not None else None))
    listed = ", ".join(f"{c} {v or '-'}" for c, v in installed)
    why = f"mixed ({', '.join(committed)} installed): {why}" + (
        f"; runs {listed}" if listed else ""
    )
    fleet.record(
        node,
        "rollout-update",
        {"wave": wave, "mixed": dict(installed), "committed": committed},
        now=now,
    )
    return NodeRollout(node, wave, "failed", tuple(done), why, True, tuple(installed))
