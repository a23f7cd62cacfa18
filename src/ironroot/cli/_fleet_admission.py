"""``ironroot fleet attest | quarantine | readmit | serve``: admission (the Azure Boost rule).

``attest [--node ID]... [--vendor-root CERT]... [--endorse FILE]... [--lifetime S] [--all]``
    attest and admit nodes in this process — challenge, evidence, appraisal, credential — the
    named ones, else every node that is pending or due (its last attestation older than the
    scan period; an operator's hold excepted), with a progress bar and a summary table. The
    first run sets admission up (the fleet CA, the verifier key) and needs the vendor CA roots
    RoT quotes chain to (``--vendor-root``, the certificates of ``ironroot rot ca-init``).
    ``--endorse`` adds logged statements (newer reference values, SAFE reviews) to what nodes
    are appraised against. Exit 1 when a node attested is not admitted.
``quarantine NODE --reason TEXT``
    quarantine a node (held: a good attestation does not readmit it): its credentials revoked,
    its VM placements stopped, key release refused.
``readmit NODE``
    lift the hold and attest the node afresh: admitted on an affirming EAR, else exit 1.
``operator issue NAME --out DIR [--lifetime S]``, ``operator revoke NAME --reason TEXT``
    an operator's control-plane credential (a new ECDSA P-384 key, certified by the fleet CA,
    recorded so that it can be revoked): the whole registry, every placement, placing VMs —
    what a node's credential may not do.
``serve [--host H] [--server-name NAME]... [--port P] [--control-port P] [--data-port P]
[--scan S] [--releases DIR] [--dashboard DIR]``
    the admission service (HTTPS), the control plane and the data plane (mutual TLS with the
    fleet's credentials), until interrupted; their TLS certificate (from the fleet CA) names
    ``--host`` (unless ``0.0.0.0``/``::``), each ``--server-name`` (a DNS name or IP address
    clients connect by; exit 2 for one that is neither), ``localhost`` and ``127.0.0.1``;
    ``--scan`` re-attests the fleet continuously;
    ``POST /v1/rollouts`` rolls the calling node out to its class's desired state with the
    class's releases and those in ``--releases`` (a node's credential, that node only);
    ``--dashboard DIR`` also serves the dashboard at ``/dashboard`` on the admission port
    (HTTPS).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import logging
import os
from pathlib import Path
from typing import Any

from ironroot.cli._text import markup
from ironroot.cli._time import instant, now_or
from ironroot.errors import ConfigError

__all__ = ["register_admission"]

_ROOT_SUFFIXES = (".pem", ".crt", ".cer", ".der")
_NOT_DELIVERED = "not delivered: its files could not be written"
_log = logging.getLogger("ironroot.fleet")


def _fleet_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--fleet", type=Path, help="the fleet's directory (or $IRONROOT_FLEET)")


def register_admission(verbs: Any) -> None:
    attest = verbs.add_parser(
        "attest",
        help="attest and admit nodes: challenge, evidence, appraisal, credential",
        epilog="example: ironroot fleet attest --fleet fleet --vendor-root vendor-ca",
    )
    _fleet_option(attest)
    attest.add_argument("--node", action="append", default=[], help="attest this node (repeatable)")
    attest.add_argument(
        "--all", action="store_true", help="attest every node, not only pending and due ones"
    )
    attest.add_argument(
        "--vendor-root",
        action="append",
        default=[],
        type=Path,
        help="a vendor CA certificate RoT quotes chain to, or a folder of them (first run)",
    )
    attest.add_argument(
        "--endorse",
        action="append",
        default=[],
        type=Path,
        help="add a logged statement (reference values, SAFE review) to the endorsements",
    )
    attest.add_argument(
        "--lifetime", type=int, help="credential lifetime in seconds (default: 3600)"
    )
    attest.add_argument(
        "--concurrency",
        type=int,
        help="nodes attested at a time, 1 to 64 (default: the number of cores, at most 8; the "
        "signature checks run outside Python's lock, so two cores admit ~1.15 times as many)",
    )
    attest.add_argument("--at", type=instant, help="the time to act at (default: now)")
    attest.set_defaults(func=_attest)

    quarantine = verbs.add_parser(
        "quarantine",
        help="quarantine a node: credentials revoked, placement stopped, key release refused",
        epilog='example: ironroot fleet quarantine node-0003 --fleet fleet --reason "BMC swap"',
    )
    _fleet_option(quarantine)
    quarantine.add_argument("node", help="the node")
    quarantine.add_argument("--reason", required=True, help="why (recorded with the event)")
    quarantine.add_argument("--at", type=instant, help="the time to act at (default: now)")
    quarantine.set_defaults(func=_quarantine)

    readmit = verbs.add_parser(
        "readmit",
        help="lift a quarantine hold and attest the node afresh",
        epilog="example: ironroot fleet readmit node-0003 --fleet fleet",
    )
    _fleet_option(readmit)
    readmit.add_argument("node", help="the node")
    readmit.add_argument("--at", type=instant, help="the time to act at (default: now)")
    readmit.set_defaults(func=_readmit)

    operator = verbs.add_parser(
        "operator", help="operators' control-plane credentials: the whole registry, placements"
    )
    ops = operator.add_subparsers(dest="operator_verb", metavar="<verb>", required=True)
    issue = ops.add_parser(
        "issue",
        help="issue an operator a key and a control-plane credential",
        epilog="example: ironroot fleet operator issue alice --fleet fleet --out alice",
    )
    _fleet_option(issue)
    issue.add_argument("operator", help="the operator's name (1-64 of A-Z a-z 0-9 _ -)")
    issue.add_argument(
        "--out",
        required=True,
        type=Path,
        help="the directory to write operator.key.pem (0600), operator.cert.pem and "
        "ca.cert.pem into (created 0700; not a symbolic link, yours, writable by you only; "
        "files there already are never replaced)",
    )
    issue.add_argument(
        "--lifetime", type=int, help="credential lifetime in seconds (default: the admission's)"
    )
    issue.add_argument("--at", type=instant, help="the time to act at (default: now)")
    issue.set_defaults(func=_operator_issue)
    revoke = ops.add_parser(
        "revoke",
        help="revoke every current credential of an operator",
        epilog='example: ironroot fleet operator revoke alice --fleet fleet --reason "left"',
    )
    _fleet_option(revoke)
    revoke.add_argument("operator", help="the operator's name")
    revoke.add_argument("--reason", required=True, help="why (kept with the revocation)")
    revoke.add_argument("--at", type=instant, help="the time to act at (default: now)")
    revoke.set_defaults(func=_operator_revoke)

    serve = verbs.add_parser(
        "serve",
        help="serve admission, the control plane and the data plane (mutual TLS)",
        epilog="example: ironroot fleet serve --fleet fleet --port 8470 --scan 300",
    )
    _fleet_option(serve)
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on")
    serve.add_argument(
        "--server-name",
        action="append",
        default=[],
        metavar="NAME",
        help="a DNS name or IP address clients reach the servers by, added to their TLS "
        "certificate (repeatable; the certificate always names --host unless 0.0.0.0 or ::, "
        "localhost and 127.0.0.1)",
    )
    serve.add_argument("--port", type=int, default=8470, help="the admission service's port")
    serve.add_argument("--control-port", type=int, default=8471, help="the control plane's port")
    serve.add_argument("--data-port", type=int, default=8472, help="the data plane's port")
    serve.add_argument(
        "--lifetime", type=int, help="credential lifetime in seconds (default: configured)"
    )
    serve.add_argument(
        "--scan", type=float, help="re-attest every node every SECONDS (default: no scanning)"
    )
    serve.add_argument(
        "--watch-log",
        action="append",
        default=[],
        metavar="URL",
        help="with --scan: follow this transparency log and re-attest at once the nodes a new "
        "statement concerns (repeatable)",
    )
    serve.add_argument(
        "--releases",
        action="append",
        default=[],
        type=Path,
        help="a directory of releases rollouts may use (repeatable)",
    )
    serve.add_argument(
        "--dashboard",
        type=Path,
        metavar="DIR",
        help="also serve the dashboard of DIR (docs/dashboard.md) at /dashboard on the "
        "admission port; it shows this fleet unless DIR names another",
    )
    serve.add_argument("--log-level", default="info", help="debug, info, warning or error")
    serve.add_argument(
        "--log-format", choices=("text", "json"), default="text", help="log lines as text or JSON"
    )
    serve.set_defaults(func=_serve)


# --- helpers -------------------------------------------------------------------------------


def _fleet(args: argparse.Namespace) -> Any:
    from ironroot.cli.fleet import fleet_dir
    from ironroot.fleet import Fleet

    return Fleet.open(fleet_dir(args))


def _vendor_roots(paths: list[Path]) -> list[bytes]:
    """The DER certificates in the files (PEM or DER) and folders given."""
    from cryptography.hazmat.primitives.serialization import Encoding

    from ironroot._fileio import read_limited
    from ironroot.crypto import load_certificates

    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files += sorted(
                p
                for p in path.iterdir()
                if p.is_file() and p.suffix in _ROOT_SUFFIXES and ".key." not in p.name
            )
        else:
            files.append(path)
    roots: list[bytes] = []
    for file in files:
        for cert in load_certificates(read_limited(file, 1024 * 1024), what=f"vendor root {file}"):
            roots.append(cert.public_bytes(Encoding.DER))
    if not roots:
        raise ConfigError("--vendor-root names no certificate")
    return roots


def _authority(args: argparse.Namespace, fleet: Any, now: Any) -> Any:
    from ironroot.errors import NotFound
    from ironroot.fleet import AdmissionAuthority

    try:
        authority = AdmissionAuthority.open(fleet, credential_lifetime=args.lifetime)
    except NotFound as exc:
        if not args.vendor_root:
            raise ConfigError(
                f"admission is not set up in {fleet.directory}: give --vendor-root (the vendor "
                "CA certificates RoT quotes chain to) on the first run"
            ) from exc
        kwargs = {"credential_lifetime": args.lifetime} if args.lifetime is not None else {}
        authority = AdmissionAuthority.init(
            fleet, vendor_roots=_vendor_roots(args.vendor_root), now=now, **kwargs
        )
    else:
        if args.vendor_root:
            raise ConfigError(
                "admission is set up already: its vendor roots are in "
                f"{authority.directory / 'vendor-roots.pem'}"
            )
    return authority


def _selected(args: argparse.Namespace, fleet: Any, authority: Any, now: Any) -> list[str]:
    from ironroot.fleet import Scanner

    if args.node:
        for node in args.node:
            fleet.record_of(node)
        return list(dict.fromkeys(args.node))
    if args.all:
        return list(fleet.node_ids())
    from ironroot.fleet import unusable_credentials

    due = set(Scanner(fleet, lambda n, t: "").due(now))
    pending = {r.id for r in fleet.records() if r.status == "pending"}
    # admitted, but the node does not hold its credential (an attest killed after the
    # admission committed): it attests again now, not once it is due
    unusable = set(unusable_credentials(fleet))
    return sorted(n for n in due | pending | unusable if authority.state.held(n) is None)


def _row(fleet: Any, node: str, error: Any) -> dict[str, Any]:
    record = fleet.record_of(node)
    return {
        "node": node,
        "status": record.status,
        "ear_id": record.ear_id,
        "credential_not_after": record.credential_not_after,
        "reason": record.reason,
        "error": None if error is None else error.code,
    }


# --- the verbs -----------------------------------------------------------------------------


def _attest(args: argparse.Namespace) -> int:
    from ironroot.errors import IronrootError
    from ironroot.fleet import attest_node

    concurrency = args.concurrency
    if concurrency is None:
        concurrency = min(os.cpu_count() or 1, 8)
    if not 1 <= concurrency <= 64:
        raise ConfigError("--concurrency is a number of nodes from 1 to 64")
    fleet = _fleet(args)
    now = now_or(args.at)
    authority = _authority(args, fleet, now)
    for path in args.endorse:
        from ironroot._fileio import read_limited

        authority.add_endorsement(read_limited(path, 4 * 1024 * 1024), now=now)
    nodes = _selected(args, fleet, authority, now)
    if len(nodes) > 1:
        from ironroot.http import settle_heap

        # A batch: until it ends this process only attests; what set-up made (the trust,
        # the endorsements, the authority) is left out of every collection, as in ``serve``.
        settle_heap()

    def one(node: str) -> dict[str, Any]:
        error = None
        try:
            attest_node(fleet, node, now=now, authority=authority)
        except IronrootError as exc:
            error = exc
        return _row(fleet, node, error)

    from concurrent.futures import ThreadPoolExecutor

    # Each node's attestation is independent (the scanner runs them so too); rows keep the
    # order of ``nodes``.
    with ThreadPoolExecutor(max_workers=min(concurrency, max(1, len(nodes)))) as pool:
        if args.json or len(nodes) < 2:
            rows = list(pool.map(one, nodes))
        else:
            from rich.progress import Progress

            rows = []
            with Progress(transient=True) as bar:
                task = bar.add_task("attesting nodes", total=len(nodes))
                for row in pool.map(one, nodes):
                    rows.append(row)
                    bar.advance(task)
    ok = all(r["status"] == "admitted" for r in rows)
    counts = fleet.status_counts()
    if args.json:
        print(json.dumps({"attested": len(rows), "counts": counts, "nodes": rows}))
        return 0 if ok else 1
    from rich.table import Table

    from ironroot.cli._text import rich_console

    console = rich_console()
    if not rows:
        console.print(
            "nothing to attest: no node is pending or due (--all attests every node, --node "
            "one); " + ", ".join(f"{n} {s}" for s, n in counts.items())
        )
        return 0
    table = Table(title=f"attested {len(rows)} node(s) of {markup(fleet.directory)}")
    for column in ("node", "status", "credential until", "EAR", "reason"):
        table.add_column(column)
    for r in rows:
        ear = (r["ear_id"] or "-").removeprefix("urn:ironroot:ear:sha256:")[:16]
        plain = r["error"] in (None, "admission-denied")  # the registry says why
        reason = r["reason"] if plain else f"{r['error']}: {r['reason']}"
        table.add_row(r["node"], r["status"], r["credential_not_after"] or "-", ear, markup(reason))
    console.print(table)
    console.print(", ".join(f"{n} {s}" for s, n in counts.items()))
    return 0 if ok else 1


def _quarantine(args: argparse.Namespace) -> int:
    from ironroot.fleet import quarantine

    fleet = _fleet(args)
    record = quarantine(fleet, args.node, args.reason, now=now_or(args.at))
    effects = fleet.events(node=args.node, kind="quarantine-effects", latest=True, limit=1)[
        0
    ].detail
    if args.json:
        print(json.dumps({"node": record.to_json(), "effects": dict(effects)}))
    else:
        print(
            f"{args.node} quarantined ({args.reason}): {len(effects['revoked'])} credential(s) "
            f"revoked, {len(effects['placements_stopped'])} placement(s) stopped, held until "
            "`ironroot fleet readmit`"
        )
    return 0


def _readmit(args: argparse.Namespace) -> int:
    from ironroot.fleet import readmit

    fleet = _fleet(args)
    result = readmit(fleet, args.node, now=now_or(args.at))
    if args.json:
        print(json.dumps(result.to_json()))
    else:
        until = result.credentials["control"].not_after.isoformat().replace("+00:00", "Z")
        print(f"{args.node} readmitted on {result.ear_id}; credentials until {until}")
    return 0


def _operator_issue(args: argparse.Namespace) -> int:
    from ironroot._fileio import make_dirs, write_atomic
    from ironroot.errors import StorageError
    from ironroot.fleet import AdmissionAuthority

    fleet = _fleet(args)
    authority = AdmissionAuthority.open(fleet)
    out = Path(args.out)
    names = ("operator.key.pem", "operator.cert.pem", "ca.cert.pem")
    try:  # checked before anything is issued: a credential nobody holds is not recorded
        if out.is_symlink():
            raise ConfigError(f"{out} is a symbolic link: give the directory itself")
        make_dirs(out, mode=0o700)
        _own_folder(out)
        # a link, even one to nowhere, is a file there already (exists() follows it)
        there = [n for n in names if os.path.lexists(out / n)]
    except OSError as exc:
        raise StorageError(f"{out}: {exc.strerror or exc}") from exc
    if there:
        raise ConfigError(f"{out} holds {', '.join(there)} already: give a new directory")
    # The key file is taken (created 0600, never replacing) before the credential is issued:
    # of issues into one folder at once, one goes on, the others issue nothing.
    key_path = out / names[0]
    now = now_or(args.at)
    try:
        reserved = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    except FileExistsError as exc:
        raise ConfigError(f"{out} holds {names[0]} already: give a new directory") from exc
    except OSError as exc:
        raise StorageError(f"{out}: {exc.strerror or exc}") from exc
    try:
        try:
            os.fchmod(reserved, 0o600)
            key, credential = authority.issue_operator(
                args.operator, now=now, lifetime=args.lifetime
            )
        except BaseException:  # nothing issued: the folder is left as it was
            os.close(reserved)
            key_path.unlink(missing_ok=True)
            raise
        # Issued and recorded: from here a failure takes the credential back (revoked, so
        # that none stays recorded that nobody holds) and removes the files written for it.
        made = [key_path]
        try:
            try:
                pem = memoryview(key.to_pem())
                while pem:
                    pem = pem[os.write(reserved, pem) :]
                os.fsync(reserved)
            finally:
                os.close(reserved)
            for name, data in ((names[1], credential.pem), (names[2], authority.ca.pem)):
                write_atomic(out / name, data, mode=0o644, exclusive=True, asked=True)
                made.append(out / name)
        except BaseException:
            _undo_operator_issue(authority, credential.serial, made, now=now)
            raise
    except OSError as exc:
        raise StorageError(f"{out}: {exc.strerror or exc}") from exc
    if args.json:
        print(json.dumps({**credential.to_json(), "directory": str(out)}))
    else:
        until = credential.not_after.isoformat().replace("+00:00", "Z")
        print(
            f"operator {args.operator}: credential {credential.serial} for the control plane "
            f"until {until}, in {out}"
        )
    return 0


def _undo_operator_issue(
    authority: Any, serial: str, made: list[Path], *, now: dt.datetime
) -> None:
    """Take back an operator credential whose files could not all be written: revoke
    ``serial`` (only it: the operator's other credentials stay good) and remove the files
    ``made`` for it. Best effort, under the error that brought it here: a failure of its own
    is logged, not raised over that error."""
    try:
        authority.credentials.revoke(serial, _NOT_DELIVERED, now=now)
    except Exception:  # the store failed too: the operator must revoke it by hand
        _log.exception("credential %s could not be revoked: revoke the operator", serial)
    for path in made:
        with contextlib.suppress(OSError):
            path.unlink(missing_ok=True)


def _own_folder(out: Path) -> None:
    """``ConfigError`` unless ``out`` is a directory (not a link to one) of this user that
    no other may write: whoever may write there could swap ``ca.cert.pem`` for a CA of their
    own, or the key and certificate for theirs, before the operator uses them."""
    import stat

    found = os.lstat(out)
    if stat.S_ISLNK(found.st_mode):
        raise ConfigError(f"{out} is a symbolic link: give the directory itself")
    if not stat.S_ISDIR(found.st_mode):
        raise ConfigError(f"{out} is not a directory")
    if found.st_uid != os.geteuid():
        raise ConfigError(f"{out} is owned by user {found.st_uid}, not by this user")
    if found.st_mode & 0o022:
        raise ConfigError(
            f"{out} may be written by others (mode {stat.S_IMODE(found.st_mode):o}): give a "
            "directory only its owner may write"
        )


def _operator_revoke(args: argparse.Namespace) -> int:
    from ironroot.fleet import AdmissionAuthority

    fleet = _fleet(args)
    authority = AdmissionAuthority.open(fleet)
    serials = authority.revoke_operator(args.operator, args.reason, now=now_or(args.at))
    if args.json:
        print(json.dumps({"operator": args.operator, "revoked": serials}))
    else:
        print(f"operator {args.operator}: {len(serials)} credential(s) revoked ({args.reason})")
    return 0


def _serve(args: argparse.Namespace) -> int:
    import sys

    from ironroot.fleet import AdmissionAuthority, Scanner, desired_rollout, serve_fleet
    from ironroot.http import check_listen, configure_logging

    fleet = _fleet(args)
    authority = AdmissionAuthority.open(fleet, credential_lifetime=args.lifetime)
    ports = (args.port, args.control_port, args.data_port)
    if len(set(ports)) != 3:
        raise ConfigError("the admission, control and data ports must differ")
    for port in ports:
        check_listen(args.host, port)
    if args.scan is not None and not 0 < args.scan <= Scanner.MAX_PERIOD:  # NaN, inf too
        raise ConfigError(
            f"--scan is a number of seconds above 0, at most {Scanner.MAX_PERIOD:.0f}"
        )
    if args.watch_log and args.scan is None:
        raise ConfigError("--watch-log needs --scan (the scanner it triggers)")
    poll = None
    if args.watch_log:
        from ironroot.fleet import LogTriggers

        poll = LogTriggers(fleet, args.watch_log).poll
    if args.scan is not None:  # a new CRL (admission/crls/, or endorsed) triggers a round
        from ironroot.fleet import RevocationWatch

        poll = RevocationWatch(fleet, authority.endorsements, then=poll).poll
    mounts = {}
    if args.dashboard is not None:
        from ironroot.web import Dashboard, create_dashboard_app

        mounts["/dashboard"] = create_dashboard_app(
            Dashboard.open(args.dashboard, fleet=fleet.directory)
        )
    configure_logging(args.log_level, args.log_format)

    def started(admission: str, control: str, data: str) -> None:
        print(
            f"fleet {fleet.directory}: admission {admission}, control plane {control}, "
            f"data plane {data} (CA {authority.directory / 'ca.cert.pem'})"
            + (f", dashboard {admission}/dashboard/" if mounts else ""),
            file=sys.stderr,
            flush=True,
        )

    serve_fleet(
        authority,
        host=args.host,
        ports=ports,
        scan_period=args.scan,
        poll=poll,
        rollout=desired_rollout(fleet, args.releases),
        on_start=started,
        mounts=mounts,
        server_names=args.server_name,
    )
    return 0
