"""``ironroot fleet``: a fleet of platform nodes (``--fleet DIR`` or ``$IRONROOT_FLEET``).

``init --class CLASS.toml --vendor-ca DIR [--nodes N]``
    create a fleet with one node class and manufacture N nodes (RoTs provisioned by the vendor
    CA of ``ironroot rot ca-init``), each booted once and registered ``pending``.
``add --vendor-ca DIR --nodes N``
    manufacture more nodes.
``status [--node ID]``
    the registry: each node's status, since when and why; with ``--json`` one object.
``events [--node ID]``
    the fleet's event log.

``attest``, ``quarantine``, ``readmit``, ``serve``: admission (``cli/_fleet_admission.py``).
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

from ironroot.cli._fleet_admission import register_admission
from ironroot.cli._fleet_desired import register_desired
from ironroot.cli._text import markup
from ironroot.cli._time import instant, now_or
from ironroot.errors import ConfigError

__all__ = ["register"]

_ENV = "IRONROOT_FLEET"


def _fleet_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--fleet", type=Path, help=f"the fleet's directory (or ${_ENV})")


def fleet_dir(args: argparse.Namespace) -> Path:
    """``--fleet`` or ``$IRONROOT_FLEET`` (``ConfigError`` when neither is given)."""
    given = args.fleet or os.environ.get(_ENV)
    if not given:
        raise ConfigError(f"give --fleet DIR or set {_ENV}")
    return Path(given)


def register(sub: Any) -> None:
    group: argparse.ArgumentParser = sub.add_parser(
        "fleet", help="a fleet of nodes: manufacture, registry, admission"
    )
    verbs = group.add_subparsers(dest="verb", metavar="<verb>", required=True)

    init = verbs.add_parser(
        "init",
        help="create a fleet and manufacture its nodes",
        epilog="example: ironroot fleet init --fleet fleet --class class.toml "
        "--vendor-ca vendor-ca --nodes 10",
    )
    _fleet_option(init)
    init.add_argument(
        "--class", dest="node_class", required=True, type=Path, help="the node class (class.toml)"
    )
    init.add_argument(
        "--vendor-ca",
        required=True,
        type=Path,
        help="the vendor CA that provisions the RoTs (ironroot rot ca-init)",
    )
    init.add_argument("--nodes", type=int, default=0, help="how many nodes (default 0)")
    init.add_argument("--at", type=instant, help="the time to act at (default: now)")
    init.set_defaults(func=_init)

    add = verbs.add_parser(
        "add",
        help="manufacture more nodes",
        epilog="example: ironroot fleet add --fleet fleet --vendor-ca vendor-ca --nodes 5",
    )
    _fleet_option(add)
    add.add_argument("--vendor-ca", required=True, type=Path, help="the vendor CA")
    add.add_argument("--nodes", type=int, required=True, help="how many nodes")
    add.add_argument("--at", type=instant, help="the time to act at (default: now)")
    add.set_defaults(func=_add)

    status = verbs.add_parser(
        "status",
        help="each node's status in the registry",
        epilog="example: ironroot fleet status --fleet fleet --json",
    )
    _fleet_option(status)
    status.add_argument("--node", help="one node")
    status.set_defaults(func=_status)

    events = verbs.add_parser(
        "events",
        help="the fleet's event log",
        epilog="example: ironroot fleet events --fleet fleet --node node-0001 (its latest "
        "1000 events; --since 0 --limit 500 pages from the first, --kind quarantined filters)",
    )
    _fleet_option(events)
    events.add_argument("--node", help="one node's events")
    events.add_argument("--kind", help="events of one kind (e.g. quarantined, admission-refused)")
    events.add_argument(
        "--since",
        type=int,
        metavar="SEQ",
        help="the events after this number, oldest first (to page through the whole log); "
        "without it, the latest ones",
    )
    events.add_argument(
        "--limit", type=int, default=1000, metavar="N", help="at most N events (default 1000)"
    )
    events.set_defaults(func=_events)
    register_admission(verbs)
    register_desired(verbs)


def _vendor_ca(directory: Path) -> Any:
    from ironroot.cli.rot import load_vendor_ca

    return load_vendor_ca(directory)


def _progress(args: argparse.Namespace, total: int) -> Any:
    if args.json or total < 2:
        return None
    from rich.progress import Progress

    return Progress(transient=True)


def _manufacture(args: argparse.Namespace, fleet: Any, count: int) -> list[str]:
    ca = _vendor_ca(args.vendor_ca)
    now = now_or(args.at)
    bar = _progress(args, count)
    if bar is None:
        return list(fleet.add_nodes(count, vendor_ca=ca, now=now))
    with bar:
        task = bar.add_task("manufacturing nodes", total=count)
        return list(
            fleet.add_nodes(count, vendor_ca=ca, now=now, progress=lambda _id: bar.advance(task))
        )


def _init(args: argparse.Namespace) -> int:
    from ironroot.cli._output import output_folder
    from ironroot.fleet import Fleet, NodeClass

    if args.nodes < 0:
        raise ConfigError("--nodes is 0 or more")
    output_folder(fleet_dir(args), make=False)  # no planted link: its keys go there
    fleet = Fleet.create(fleet_dir(args), node_class=NodeClass.load_toml(args.node_class))
    made = _manufacture(args, fleet, args.nodes) if args.nodes else []
    _print_status(args, fleet, f"created fleet {fleet.directory} with {len(made)} node(s)")
    return 0


def _add(args: argparse.Namespace) -> int:
    from ironroot.fleet import Fleet

    fleet = Fleet.open(fleet_dir(args))
    made = _manufacture(args, fleet, args.nodes)
    _print_status(args, fleet, f"manufactured {len(made)} node(s)")
    return 0


def _print_status(args: argparse.Namespace, fleet: Any, title: str) -> None:
    counts = fleet.status_counts()
    if args.json:
        print(json.dumps({"counts": counts}))
    else:
        print(title + ": " + ", ".join(f"{n} {s}" for s, n in counts.items()))


def _status(args: argparse.Namespace) -> int:
    from ironroot.fleet import Fleet, unusable_credentials

    fleet = Fleet.open(fleet_dir(args))
    records = [fleet.record_of(args.node)] if args.node else fleet.records()
    # admitted nodes that do not hold the credential the registry issued them
    unusable = unusable_credentials(fleet, [r.id for r in records])
    if args.json:
        faults = {n: {"code": e.code, "detail": str(e)} for n, e in unusable.items()}
        counts = fleet.status_counts()
        nodes = [r.to_json() for r in records]
        print(json.dumps({"counts": counts, "nodes": nodes, "unusable_credentials": faults}))
        return 0
    from rich.table import Table

    from ironroot.cli._text import rich_console

    table = Table(title=f"fleet {markup(fleet.directory)}")
    for column in ("node", "class", "status", "since", "reason", "credential until"):
        table.add_column(column)
    for r in records:
        status = r.status if r.id not in unusable else f"{r.status} (credential unusable)"
        table.add_row(
            r.id, r.node_class, status, r.since, markup(r.reason), r.credential_not_after or "-"
        )
    console = rich_console()
    console.print(table)
    for node, fault in unusable.items():
        console.print(
            markup(
                f"{node} does not hold its credential ({fault.code}: {fault}): "
                "`ironroot fleet attest` attests it again"
            )
        )
    return 0


def _events(args: argparse.Namespace) -> int:
    from ironroot.fleet import Fleet

    if args.limit < 1 or (args.since is not None and args.since < 0):
        raise ConfigError("--limit is at least 1 and --since is not negative")
    events = Fleet.open(fleet_dir(args)).events(
        node=args.node,
        kind=args.kind,
        since=args.since or 0,
        limit=args.limit,
        latest=args.since is None,
    )
    if args.json:
        print(json.dumps({"events": [e.to_json() for e in events]}))
    else:
        for e in events:
            print(f"{e.seq:6} {e.at} {e.node or '-':10} {e.kind}: {json.dumps(dict(e.detail))}")
    return 0
