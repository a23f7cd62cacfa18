"""``ironroot audit``: a node's audit bundle, exported from the fleet and verified offline.

``export NODE --fleet DIR --log-url URL --out BUNDLE [--ear FILE] [--releases DB] [--at TIME]``
    collect everything that justifies the node's state, fetch each transparency service's
    checkpoint and proofs (``--log-url``, once per service; ``--ca``/``--client-cert`` for
    HTTPS), and have the node's RoT seal it into one file. ``--releases``: the key service's
    ``releases.db`` holding the node HSM's release statements (default
    ``<node>/releases.db``).
``verify BUNDLE [--trust FILE] [--html OUT] [--at TIME] [--require-signed-hsm-records]
[--require-hsm-node-binding]``
    re-check all of it offline against the trust file (``--trust`` or
    ``$IRONROOT_AUDIT_TRUST``), printing the chain of trust step by step; exit 1 naming the
    first break. ``--html`` writes the same report as a page for people.
    ``--require-signed-hsm-records`` fails the ``hsm`` step unless a signed audit checkpoint
    covers every HSM audit record the bundle holds (``hsm-records-unsigned``);
    ``--require-hsm-node-binding`` fails it unless the HSM's attestation chain ties the HSM
    to the node's RoT (``hsm-not-bound``). Each is the trust file's ``[hsm]`` setting of the
    same meaning, for this run: a flag can only add a requirement, never lift one.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from pathlib import Path
from typing import Any, Final

from ironroot._fileio import read_limited
from ironroot.cli._output import write_output
from ironroot.cli._serving import add_client_options, client_tls
from ironroot.cli._text import markup, shown
from ironroot.cli._time import instant, now_or
from ironroot.cli.fleet import fleet_dir
from ironroot.errors import ConfigError, LimitExceeded

__all__ = ["register"]

_TRUST_ENV: Final = "IRONROOT_AUDIT_TRUST"
_MAX_BUNDLE: Final = 1024 * 1024 * 1024


def register(sub: Any) -> None:
    group: argparse.ArgumentParser = sub.add_parser(
        "audit", help="a node's audit bundle: export it, verify it offline"
    )
    verbs = group.add_subparsers(dest="verb", metavar="<verb>", required=True)

    export = verbs.add_parser(
        "export",
        help="write one sealed file with everything that justifies a node's state",
        epilog="example: ironroot audit export node-0001 --fleet fleet "
        "--log-url http://127.0.0.1:8000 --out node-0001.audit",
    )
    export.add_argument("node", help="the node's id in the fleet (node-0001)")
    export.add_argument("--fleet", type=Path, help="the fleet's directory (or $IRONROOT_FLEET)")
    export.add_argument(
        "--log-url",
        action="append",
        required=True,
        help="a transparency service the node's receipts come from (repeat for each)",
    )
    export.add_argument("--out", type=Path, required=True, help="the bundle file to write")
    export.add_argument(
        "--ear", type=Path, help="the node's EAR (JWT or CWT), when the fleet does not hold it"
    )
    export.add_argument(
        "--releases",
        type=Path,
        help="the key service's releases.db with the node HSM's release statements "
        "(default: <node>/releases.db)",
    )
    export.add_argument("--at", type=instant, help="the export time (default: now)")
    add_client_options(export)
    export.set_defaults(func=_export)

    verify = verbs.add_parser(
        "verify",
        help="re-check a bundle offline and print the chain of trust step by step",
        epilog="example: ironroot audit verify node-0001.audit --trust audit-trust.toml "
        "--html node-0001.html",
    )
    verify.add_argument("bundle", type=Path, help="the audit bundle")
    verify.add_argument(
        "--trust", type=Path, help=f"the auditor's trust file (TOML; or ${_TRUST_ENV})"
    )
    verify.add_argument("--html", type=Path, help="also write the report as an HTML page")
    verify.add_argument(
        "--at", type=instant, help="judge the evidence as of this time (default: the export's)"
    )
    verify.add_argument(
        "--require-signed-hsm-records",
        action="store_true",
        help="fail unless a signed HSM audit checkpoint covers every HSM audit record in the "
        "bundle (as [hsm] require_signed_records = true in the trust file)",
    )
    verify.add_argument(
        "--require-hsm-node-binding",
        action="store_true",
        help="fail unless the HSM's attestation chain binds its audit chain to the node's RoT "
        "(as [hsm] require_node_binding = true in the trust file)",
    )
    verify.set_defaults(func=_verify)


def _export(args: argparse.Namespace) -> int:
    from ironroot.audit import AuditExport, collect_export, export_sealed
    from ironroot.fleet import Fleet
    from ironroot.log import HttpLogFetcher

    fleet = Fleet.open(fleet_dir(args))
    ear = read_limited(args.ear, 1024 * 1024) if args.ear else None
    now = now_or(args.at)
    fetchers = [HttpLogFetcher(url, verify=client_tls(args)) for url in args.log_url]

    def collect() -> AuditExport:
        if args.json:
            return collect_export(
                fleet, args.node, logs=fetchers, now=now, ear=ear, releases=args.releases
            )
        from ironroot.cli._text import rich_console

        node = markup(args.node)  # as given: text, not markup
        with rich_console(stderr=True).status(f"{node}: exporting") as status:
            return collect_export(
                fleet,
                args.node,
                logs=fetchers,
                now=now,
                ear=ear,
                releases=args.releases,
                progress=lambda what: status.update(f"{node}: {markup(what)}"),
            )

    try:
        # sealed while the node is held, and only if no boot or update ran since the
        # collection began (else collected again)
        export, data = export_sealed(fleet, args.node, collect)
    finally:
        for fetcher in fetchers:
            fetcher.close()
    write_output(args.out, data)
    if args.json:
        summary = {
            "bundle": str(args.out),
            "node": export.node,
            "bytes": len(data),
            "members": sorted(export.members),
            "absent": dict(export.absent),
        }
        print(json.dumps(summary))
        return 0
    print(
        f"wrote {args.out}: {len(export.members)} members, {len(data)} bytes, sealed by the "
        f"RoT of {shown(export.node)}"
    )
    for name, reason in sorted(export.absent.items()):
        print(f"  absent {shown(name)}: {shown(reason)}")
    return 0


def _trust_file(args: argparse.Namespace) -> Path:
    given = args.trust or os.environ.get(_TRUST_ENV)
    if not given:
        raise ConfigError(f"give --trust FILE or set {_TRUST_ENV}: an audit trusts nothing else")
    return Path(given)


def _verify(args: argparse.Namespace) -> int:
    from ironroot.audit import (
        AuditTrust,
        check_bundle,
        render_console,
        render_html,
        report_unread,
    )

    trust = AuditTrust.load_toml(_trust_file(args))
    if args.require_signed_hsm_records:
        trust = dataclasses.replace(trust, require_signed_hsm_records=True)
    if args.require_hsm_node_binding:
        trust = dataclasses.replace(trust, require_hsm_node_binding=True)
    try:
        data = read_limited(args.bundle, _MAX_BUNDLE)
    except LimitExceeded:  # the format step's failure, as for any other file that is no bundle
        report = report_unread(
            f"{args.bundle} is larger than any audit bundle ({_MAX_BUNDLE} bytes): not read"
        )
    else:
        report = check_bundle(data, trust, at=args.at)
    if args.html:
        write_output(args.html, render_html(report).encode("utf-8"))
    if args.json:
        print(json.dumps(report.to_json(), indent=2))
    else:
        from ironroot.cli._text import rich_console

        render_console(report, rich_console())
    failure = report.failure
    if failure is not None and failure.error is not None:
        error = failure.error
        print(f"ironroot: {error.code}: {failure.name}: {shown(error.detail)}", file=sys.stderr)
        return 1
    return 0
