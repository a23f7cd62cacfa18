"""``ironroot fleet desired|reconcile|rollout``: a class's desired state on the log, drift, and
rollouts in waves (``--fleet DIR`` or ``$IRONROOT_FLEET``).

``desired init --signer ISS=KEY.pub.pem ... --required N [--service-keys FILE]
[--service-issuer ISS]``
    who may change the class's desired state: the authorized signers and how many distinct
    ones a change needs (2: the two-person rule); the transparency services whose receipts
    count (default: the class trust's keys and its ``service_issuer``), and the issuer their
    receipts must name (a receipt naming another: ``UnknownIssuer`` ``untrusted-service``).
``desired sign DESIRED.toml --key KEY --iss ISS --out FILE``
    one approver's Signed Statement over the document (offline; nothing is registered).
``desired publish [DESIRED.toml --sign ISS=KEY ...] [--statement FILE ...] [--url LOG]``
    register the approvals that carry no receipt, verify them all (receipts from a trusted
    service, signers authorized and distinct, enough of them, version increasing) and put the
    desired state in force.
``desired approvers``
    the governance in force: its epoch, the approvers and the quorum (and the epoch it was set
    at), the revoked keys.
``desired approver-sign CHANGE --key KEY --iss ISS --out FILE``
    one approver's Signed Statement over a governance change of the epoch in force (offline).
    ``CHANGE`` is ``--revoke ISS`` or ``--add ISS=KEY.pub.pem``, and/or ``--required N`` (the
    new quorum), and/or ``--service-keys FILE [--service-issuer ISS]`` (the new trusted
    transparency services).
``desired approver-apply CHANGE [--sign ISS=KEY ...] [--statement FILE ...] [--url LOG]``
    register the approvals, verify them against the quorum and the services in force and
    apply the change (a revoked key's approvals count no more; the last approvers are never
    removed below the quorum; lowering the quorum takes the quorum in force).
``desired show [--at TIME]``
    the desired state in force, verified again: at ``TIME`` (default now), as ``reconcile``
    and ``rollout --at TIME`` see it — the state the store holds in force, whose approvals
    must be valid then (an expired or not-yet-valid approval: exit 1).
``reconcile [--class NAME] [--node ID ...] [--measure] [--policy NAME=FILE ...] [--all]``
    every node's measured state against the desired state: a table of the drift (``--all``:
    every item) or one JSON object; exit 1 when anything drifted.
``rollout [--wave-size N] [--releases DIR ...] [--dry-run]``
    update the nodes toward the desired firmware in waves, stop at the first failure, report
    (the nodes an earlier rollout was cut short on too: ``interrupted``); exit 1 when it
    stopped.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from ironroot.cli._input import read_input
from ironroot.cli._output import check_output, write_output
from ironroot.cli._serving import add_client_options, add_url_options, client_tls, token
from ironroot.cli._text import markup
from ironroot.cli._time import instant, now_or
from ironroot.errors import ConfigError

_T = TypeVar("_T")

__all__ = ["register_desired"]


def _fleet_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--fleet", type=Path, help="the fleet's directory (or $IRONROOT_FLEET)")
    parser.add_argument("--class", dest="node_class", help="the node class (default: the first)")


def _pairs(values: list[str] | None, what: str) -> list[tuple[str, str]]:
    out = []
    for value in values or []:
        left, sep, right = value.rpartition("=")
        if not sep or not left or not right:
            raise ConfigError(f"{what} is NAME=VALUE, not {value!r}")
        out.append((left, right))
    return out


def register_desired(verbs: Any) -> None:
    """Add ``desired``, ``reconcile`` and ``rollout`` to ``ironroot fleet``."""
    desired = verbs.add_parser("desired", help="the desired state of a node class, on the log")
    sub = desired.add_subparsers(dest="desired_verb", metavar="<verb>", required=True)

    init = sub.add_parser(
        "init",
        help="who may change the class's desired state",
        epilog="example: ironroot fleet desired init --fleet fleet "
        "--signer https://ops.example/alice=alice.pub.pem "
        "--signer https://ops.example/bob=bob.pub.pem --required 2",
    )
    _fleet_option(init)
    init.add_argument(
        "--signer",
        action="append",
        required=True,
        metavar="ISS=KEY",
        help="an authorized signer: the iss of their statements = their public key (PEM)",
    )
    init.add_argument(
        "--required", type=int, default=2, help="distinct signers a change needs (default 2)"
    )
    init.add_argument(
        "--service-keys",
        type=Path,
        help="the transparency services whose receipts count: a COSE Key Set or PEM "
        "(default: the class trust's)",
    )
    init.add_argument(
        "--service-issuer",
        help="the issuer (CWT iss) the receipts must name: a receipt naming another service "
        "is refused (default: the class trust's service_issuer without --service-keys, else "
        "none)",
    )
    init.set_defaults(func=_init)

    sign = sub.add_parser(
        "sign",
        help="one approval: a Signed Statement over a desired state (offline)",
        epilog="example: ironroot fleet desired sign desired.toml --fleet fleet "
        "--key alice.key --iss https://ops.example/alice --out alice.cose",
    )
    _fleet_option(sign)
    sign.add_argument("document", type=Path, help="the desired state (desired.toml)")
    sign.add_argument("--key", required=True, type=Path, help="the approver's private key")
    sign.add_argument("--iss", required=True, help="the approver's iss")
    sign.add_argument("--out", required=True, type=Path, help="where to write the statement")
    sign.add_argument("--at", type=instant, help="the statement's iat (default: now)")
    sign.set_defaults(func=_sign)

    publish = sub.add_parser(
        "publish",
        help="register the approvals, verify them and put the desired state in force",
        epilog="example: ironroot fleet desired publish --fleet fleet --statement alice.cose "
        "--statement bob.cose --url http://127.0.0.1:8000",
    )
    _fleet_option(publish)
    publish.add_argument(
        "document", nargs="?", type=Path, help="a desired state to sign now (desired.toml)"
    )
    publish.add_argument(
        "--sign",
        action="append",
        metavar="ISS=KEY",
        help="sign the document now as ISS with the private key KEY (repeatable)",
    )
    publish.add_argument(
        "--statement",
        action="append",
        type=Path,
        help="an approval signed before (fleet desired sign), registered or not (repeatable)",
    )
    add_url_options(publish, what="the registering transparency service's", token=True)
    add_client_options(publish)
    publish.add_argument("--at", type=instant, help="the time to act at (default: now)")
    publish.set_defaults(func=_publish)

    approvers = sub.add_parser(
        "approvers",
        help="who may approve a change now: the governance in force",
        epilog="example: ironroot fleet desired approvers --fleet fleet --json",
    )
    _fleet_option(approvers)
    approvers.set_defaults(func=_approvers)

    for verb, what in (
        (
            "approver-sign",
            "one approval of a governance change: an approver, the quorum, the services (offline)",
        ),
        (
            "approver-apply",
            "revoke or add an approver, set the quorum or the trusted services: a governed "
            "change, on the log",
        ),
    ):
        example = (
            "ironroot fleet desired approver-sign --fleet fleet --revoke "
            "https://ops.example/alice --key bob.key --iss https://ops.example/bob --out bob.cose"
            if verb == "approver-sign"
            else "ironroot fleet desired approver-apply --fleet fleet --revoke "
            "https://ops.example/alice --statement bob.cose --sign "
            "https://ops.example/carol=carol.key --url http://127.0.0.1:8000"
        )
        parser = sub.add_parser(verb, help=what, epilog="example: " + example)
        _fleet_option(parser)
        action = parser.add_mutually_exclusive_group()
        action.add_argument("--revoke", metavar="ISS", help="the approver to revoke")
        action.add_argument(
            "--add", metavar="ISS=KEY", help="the approver to add: iss = public key (PEM)"
        )
        parser.add_argument(
            "--required",
            type=int,
            metavar="N",
            help="the new quorum: 1 to the number of approvers after the change (lowering it "
            "takes the quorum in force)",
        )
        parser.add_argument(
            "--service-keys",
            type=Path,
            metavar="FILE",
            help="the new trusted transparency services: a COSE key set (the service's "
            "/.well-known/scitt-keys) or a PEM public key; replaces the keys and the issuer pin",
        )
        parser.add_argument(
            "--service-issuer",
            metavar="ISS",
            help="with --service-keys: the issuer the new services' receipts must name",
        )
        parser.add_argument("--note", default="", help="why (recorded in the signed change)")
        parser.add_argument("--at", type=instant, help="the time to act at (default: now)")
        if verb == "approver-sign":
            parser.add_argument("--key", required=True, type=Path, help="the signer's private key")
            parser.add_argument("--iss", required=True, help="the signer's iss")
            parser.add_argument("--out", required=True, type=Path, help="the statement's file")
            parser.set_defaults(func=_approver_sign)
        else:
            parser.add_argument(
                "--sign",
                action="append",
                metavar="ISS=KEY",
                help="approve the change now as ISS with the private key KEY (repeatable)",
            )
            parser.add_argument(
                "--statement",
                action="append",
                type=Path,
                help="an approval signed before (approver-sign), registered or not (repeatable)",
            )
            add_url_options(parser, what="the registering transparency service's", token=True)
            add_client_options(parser)
            parser.set_defaults(func=_approver_apply)

    show = sub.add_parser(
        "show",
        help="the desired state in force, verified again",
        epilog="example: ironroot fleet desired show --fleet fleet --json",
    )
    _fleet_option(show)
    show.add_argument(
        "--at",
        type=instant,
        help="the time to judge it at (default: now): the state reconcile and rollout --at "
        "TIME act on, in force only if its approvals are valid then (not a look into history)",
    )
    show.set_defaults(func=_show)

    reconcile = verbs.add_parser(
        "reconcile",
        help="every node's measured state against the desired state: the drift",
        epilog="example: ironroot fleet reconcile --fleet fleet --measure --json",
    )
    reconcile.add_argument("--fleet", type=Path, help="the fleet's directory (or $IRONROOT_FLEET)")
    reconcile.add_argument(
        "--class", dest="node_class", help="only the nodes of this class (default: every node)"
    )
    reconcile.add_argument("--node", action="append", help="only this node (repeatable)")
    reconcile.add_argument(
        "--measure",
        action="store_true",
        help="also measure each SPDM device now (signed measurements)",
    )
    reconcile.add_argument(
        "--policy",
        action="append",
        metavar="NAME=FILE",
        help="a policy in force to compare with the desired state's (repeatable)",
    )
    reconcile.add_argument("--all", action="store_true", help="show every item, not only drift")
    reconcile.add_argument("--at", type=instant, help="the time to act at (default: now)")
    reconcile.set_defaults(func=_reconcile)

    roll = verbs.add_parser(
        "rollout",
        help="update the nodes toward the desired firmware in waves",
        epilog="example: ironroot fleet rollout --fleet fleet --wave-size 10 --releases releases",
    )
    _fleet_option(roll)
    roll.add_argument("--wave-size", type=int, default=1, help="nodes per wave (default 1)")
    roll.add_argument(
        "--releases",
        action="append",
        type=Path,
        help="a directory of bundles (NAME.bin, NAME.*.ts) and PFMs (NAME.pfm, NAME.pfm.ts); "
        "X.ts.witnessed is taken for X.ts; the class's own releases are always included "
        "(repeatable)",
    )
    roll.add_argument("--node", action="append", help="only this node (repeatable)")
    roll.add_argument("--dry-run", action="store_true", help="plan and report, update nothing")
    roll.add_argument(
        "--allow-recovery-removal",
        action="append",
        default=[],
        metavar="COMPONENT",
        help="accept that the desired PFM no longer lists COMPONENT's recovery image, leaving "
        "it nothing to recover to until an update replaces it (repeat; default: refused)",
    )
    roll.add_argument(
        "--inject",
        action="append",
        metavar="NODE=FAULT",
        help="drill: run NODE's updates with a platform fault (e.g. fail-health)",
    )
    roll.add_argument("--at", type=instant, help="the time to act at (default: now)")
    roll.set_defaults(func=_rollout)


# --- verbs ------------------------------------------------------------------------------------


def _fleet(args: argparse.Namespace) -> Any:
    from ironroot.cli.fleet import fleet_dir
    from ironroot.fleet import Fleet

    return Fleet.open(fleet_dir(args))


def _class_name(args: argparse.Namespace, fleet: Any) -> str:
    name = getattr(args, "node_class", None)
    return str(fleet.classes()[0]) if name is None else str(name)


def _service_keys(path: Path) -> dict[bytes, Any]:
    """``--service-keys``: a COSE key set or one PEM public key, by kid."""
    from ironroot.cose import decode_key_set
    from ironroot.crypto import PublicKey

    data = read_input(path)
    if data.lstrip().startswith(b"-----BEGIN"):
        key = PublicKey.from_pem(data)
        return {key.kid: key}
    return dict(decode_key_set(data))


def _init(args: argparse.Namespace) -> int:
    from ironroot.crypto import PublicKey
    from ironroot.fleet import AuthorizedSigner, DesiredStore, Governance

    fleet = _fleet(args)
    name = _class_name(args, fleet)
    signers = tuple(
        AuthorizedSigner(iss, PublicKey.from_pem(read_input(path)))
        for iss, path in _pairs(args.signer, "--signer")
    )
    issuer = args.service_issuer
    if args.service_keys is not None:
        services = _service_keys(args.service_keys)
    else:
        trust = fleet.node_class(name).trust
        services = {
            kid: key for kid, key in trust.service_keys.items() if isinstance(key, PublicKey)
        }
        if issuer is None:
            issuer = trust.service_issuer
    governance = Governance(name, signers, args.required, services, issuer)
    DesiredStore(fleet).init(governance)
    if args.json:
        print(json.dumps({"class": name, "governance": governance.to_json()}))
    else:
        print(
            f"class {name}: {len(signers)} authorized signer(s), {args.required} required per "
            f"change, {len(services)} trusted transparency service key(s)"
            + (f" issuing as {issuer}" if issuer is not None else "")
        )
    return 0


def _document(args: argparse.Namespace, fleet: Any, name: str) -> Any:
    from ironroot.fleet import DesiredState

    return DesiredState.load_toml(args.document, fleet.node_class(name), fleet=fleet.identity())


def _sign(args: argparse.Namespace) -> int:
    from ironroot.crypto import load_signer
    from ironroot.fleet import sign_desired

    check_output(args.out)  # before the key signs
    fleet = _fleet(args)
    name = _class_name(args, fleet)
    state = _document(args, fleet, name)
    statement = sign_desired(state, load_signer(args.key), iss=args.iss, iat=now_or(args.at))
    write_output(args.out, statement)
    if args.json:
        print(
            json.dumps(
                {"out": str(args.out), "version": state.version, "sha384": state.sha384.hex()}
            )
        )
    else:
        print(
            f"wrote {args.out}: {args.iss} approves class {name} desired state "
            f"v{state.version} ({state.sha384.hex()[:16]})"
        )
    return 0


def _publish(args: argparse.Namespace) -> int:
    from ironroot.crypto import load_signer
    from ironroot.fleet import DesiredStore, sign_desired

    fleet = _fleet(args)
    name = _class_name(args, fleet)
    now = now_or(args.at)
    statements = [read_input(p) for p in args.statement or []]
    signs = _pairs(args.sign, "--sign")
    if signs:
        if args.document is None:
            raise ConfigError("--sign needs the desired state to sign (desired.toml)")
        state = _document(args, fleet, name)
        statements += [
            sign_desired(state, load_signer(Path(key)), iss=iss, iat=now) for iss, key in signs
        ]
    elif args.document is not None:
        raise ConfigError("a document to publish needs --sign ISS=KEY (or give --statement)")
    if not statements:
        raise ConfigError("give approvals: --statement FILE or a document with --sign ISS=KEY")
    store = DesiredStore(fleet)
    verified = _registering(
        args, lambda registrar: store.publish(name, statements, now=now, registrar=registrar)
    )
    state = verified.state
    if args.json:
        print(json.dumps({"class": name, **verified.to_json()}))
    else:
        print(
            f"class {name}: desired state v{state.version} ({state.sha384.hex()[:16]}) is in "
            f"force, approved by {', '.join(verified.signers)}"
        )
    return 0


def _registering(args: argparse.Namespace, submit: Callable[[Any], _T]) -> _T:
    """``submit(registrar)``: with a client of the transparency service ``--url`` (or
    ``$IRONROOT_URL``) names, which registers the approvals that carry no receipt; ``None``
    without one (every approval must then carry its receipts)."""
    given = getattr(args, "url", None) or os.environ.get("IRONROOT_URL")
    if not given:
        return submit(None)
    from ironroot.transparency import TransparencyClient

    with TransparencyClient(given, token=token(args), verify=client_tls(args)) as client:
        return submit(client)


def _quorum_epoch(store: Any, name: str) -> int:
    """The governance epoch the quorum in force was set at (1: ``desired init``)."""
    history = store.governance_history(name)
    epoch = 1
    for before, after in itertools.pairwise(history):
        if after.required != before.required:
            epoch = after.epoch
    return epoch


def _governance_json(governance: Any, quorum_epoch: int) -> dict[str, Any]:
    return {
        "epoch": governance.epoch,
        "required": governance.required,
        "quorum": {"required": governance.required, "epoch": quorum_epoch},
        "service_kids": [kid.hex() for kid in governance.service_keys],
        "service_issuer": governance.service_issuer,
        "approvers": [{"iss": s.iss, "kid": s.key.kid.hex()} for s in governance.signers],
        "revoked": [
            {"iss": r.iss, "kid": r.kid.hex(), "epoch": r.epoch} for r in governance.revoked
        ],
    }


def _approvers(args: argparse.Namespace) -> int:
    from ironroot.fleet import DesiredStore

    fleet = _fleet(args)
    name = _class_name(args, fleet)
    store = DesiredStore(fleet)
    governance = store.governance(name)
    since = _quorum_epoch(store, name)
    if args.json:
        print(json.dumps({"class": name, **_governance_json(governance, since)}))
        return 0
    print(
        f"class {name}: governance epoch {governance.epoch}, {governance.required} of "
        f"{len(governance.signers)} approver(s) per change (quorum since epoch {since}), "
        f"{len(governance.service_keys)} trusted transparency service key(s)"
    )
    for signer in governance.signers:
        print(f"  approver {signer.iss} (key {signer.key.kid.hex()[:16]})")
    for gone in governance.revoked:
        print(f"  revoked  {gone.iss} (key {gone.kid.hex()[:16]}) at epoch {gone.epoch}")
    return 0


def _change(args: argparse.Namespace, fleet: Any, name: str) -> Any:
    """The governance change ``--revoke``/``--add``, ``--required`` and ``--service-keys``
    name, for the epoch in force."""
    from ironroot.crypto import PublicKey
    from ironroot.fleet import DesiredStore, GovernanceChange

    if all(v is None for v in (args.revoke, args.add, args.required, args.service_keys)):
        raise ConfigError(
            "give the change: --revoke ISS or --add ISS=KEY, --required N, --service-keys FILE"
        )
    if args.service_issuer is not None and args.service_keys is None:
        raise ConfigError("--service-issuer pins the services given with --service-keys")
    governance = DesiredStore(fleet).governance(name)
    action, iss, key = "set", "", None
    if args.revoke is not None:
        found = [s for s in governance.signers if s.iss == args.revoke]
        if not found:
            raise ConfigError(f"{args.revoke} is not an approver of class {name}")
        action, iss, key = "revoke", args.revoke, found[0].key
    elif args.add is not None:
        ((iss, path),) = _pairs([args.add], "--add")
        action, key = "add", PublicKey.from_pem(read_input(Path(path)))
    services = None
    if args.service_keys is not None:
        services = tuple(_service_keys(args.service_keys).values())
    return GovernanceChange(
        fleet.identity(),
        name,
        governance.epoch,
        action,
        iss,
        key,
        args.note,
        args.required,
        services,
        args.service_issuer,
    )


def _approver_sign(args: argparse.Namespace) -> int:
    from ironroot.crypto import load_signer
    from ironroot.fleet import sign_governance_change

    check_output(args.out)  # before the key signs
    fleet = _fleet(args)
    name = _class_name(args, fleet)
    change = _change(args, fleet, name)
    statement = sign_governance_change(
        change, load_signer(args.key), iss=args.iss, iat=now_or(args.at)
    )
    write_output(args.out, statement)
    if args.json:
        print(json.dumps({"out": str(args.out), **change.to_json()}))
    else:
        print(
            f"wrote {args.out}: {args.iss} approves {change.describe()} in class "
            f"{name}'s governance epoch {change.epoch}"
        )
    return 0


def _approver_apply(args: argparse.Namespace) -> int:
    from ironroot.crypto import load_signer
    from ironroot.fleet import DesiredStore, sign_governance_change

    fleet = _fleet(args)
    name = _class_name(args, fleet)
    now = now_or(args.at)
    change = _change(args, fleet, name)
    statements = [read_input(p) for p in args.statement or []]
    statements += [
        sign_governance_change(change, load_signer(Path(key)), iss=iss, iat=now)
        for iss, key in _pairs(args.sign, "--sign")
    ]
    if not statements:
        raise ConfigError("give approvals: --statement FILE or --sign ISS=KEY")
    store = DesiredStore(fleet)
    verified = _registering(
        args,
        lambda registrar: store.change_governance(name, statements, now=now, registrar=registrar),
    )
    governance = verified.governance
    if args.json:
        print(
            json.dumps(
                {
                    "class": name,
                    "change": verified.change.to_json(),
                    "signers": list(verified.signers),
                    "governance": _governance_json(governance, _quorum_epoch(store, name)),
                }
            )
        )
    else:
        print(
            f"class {name}: {verified.change.describe()} applied, approved "
            f"by {', '.join(verified.signers)}; governance epoch {governance.epoch}: "
            f"{governance.required} of {', '.join(s.iss for s in governance.signers)}"
        )
    return 0


def _show(args: argparse.Namespace) -> int:
    from ironroot.fleet import DesiredStore

    fleet = _fleet(args)
    name = _class_name(args, fleet)
    store = DesiredStore(fleet)
    verified = store.current(name, now=now_or(args.at))
    governance = store.governance(name)
    since = _quorum_epoch(store, name)
    state = verified.state
    if args.json:
        print(
            json.dumps(
                {
                    "class": name,
                    "history": store.history(name),
                    **verified.to_json(),
                    "governance": _governance_json(governance, since),
                }
            )
        )
        return 0
    from rich.table import Table

    from ironroot.cli._text import rich_console
    from ironroot.fleet._desired import revoked_keys  # the CLI is the outer shell

    table = Table(
        title=f"class {name}: desired state v{state.version} ({state.sha384.hex()[:16]}), "
        f"approved by {markup(', '.join(verified.signers))}; approvers now (governance "
        f"epoch {governance.epoch}, {governance.required} per change): "
        f"{markup(', '.join(s.iss for s in governance.signers))}; quorum "
        f"{governance.required} of {len(governance.signers)} since governance epoch {since}"
        + (
            f"; revoked: {markup(', '.join(r.iss for r in governance.revoked))}"
            if governance.revoked
            else ""
        )
    )
    for column in ("item", "desired"):
        table.add_column(column)
    for component, target in state.firmware.items():
        table.add_row(
            f"firmware:{component}",
            f"{markup(target.version)} (svn {target.svn}) {target.sha384.hex()[:16]}",
        )
    table.add_row("pfm", f"svn {state.pfm.svn} {state.pfm.sha384.hex()[:16]}")
    fuses = state.fuses
    table.add_row("fuse:debug", "locked" if fuses.debug_locked else "unlocked")
    table.add_row("fuse:lifecycle", fuses.lifecycle)
    table.add_row("fuse:svn", f">= {fuses.min_svn}")
    table.add_row("fuse:anti-rollback", "enabled" if fuses.anti_rollback else "disabled")
    table.add_row("fuse:vendor-key", fuses.vendor_key_hash.hex()[:16])
    for kind, mask in (("ecc", fuses.ecc_revoked), ("pqc", fuses.pqc_revoked)):
        keys = revoked_keys(mask)
        table.add_row(f"fuse:{kind}-revoked", f"revokes {keys}" if keys else "none required")
    for policy, digest in state.policies.items():
        table.add_row(f"policy:{policy}", digest.hex()[:16])
    if state.note:
        table.add_row("note", markup(state.note))
    rich_console().print(table)
    return 0


def _bar(args: argparse.Namespace, total: int, what: str) -> Any:
    if args.json or total < 2:
        return None
    from rich.progress import Progress

    bar = Progress(transient=True)
    bar.add_task(what, total=total)
    return bar


def _reconcile(args: argparse.Namespace) -> int:
    from ironroot.fleet import reconcile

    fleet = _fleet(args)
    policies = {name: read_input(path) for name, path in _pairs(args.policy, "--policy")}
    now = now_or(args.at)
    total = len(args.node) if args.node else len(fleet.node_ids())
    bar = _bar(args, total, "reconciling")
    kwargs: dict[str, Any] = {
        "now": now,
        "measure": args.measure,
        "nodes": args.node,
        "node_class": args.node_class,
        "policies": policies or None,
    }
    if bar is None:
        report = reconcile(fleet, **kwargs)
    else:
        with bar:
            report = reconcile(fleet, progress=lambda _n: bar.advance(bar.task_ids[0]), **kwargs)
    if args.json:
        print(json.dumps(report.to_json()))
        return 0 if report.ok else 1
    from rich.table import Table

    from ironroot.cli._text import rich_console

    table = Table(title=f"reconcile {markup(fleet.directory)} at {report.at:%Y-%m-%d %H:%M:%S}Z")
    for column in ("node", "v", "item", "source", "desired", "measured", "drift"):
        table.add_column(column, no_wrap=column in ("node", "v", "item", "drift"))
    for c in report.classes:
        for item in c.items:
            if args.all or not item.ok:
                table.add_row(
                    f"class {c.node_class}",
                    str(c.desired_version),
                    item.item,
                    item.source,
                    markup(item.desired),
                    markup(item.measured),
                    item.code or "ok",
                )
    for node in report.nodes:
        shown = node.items if args.all else node.drift
        if not shown:
            table.add_row(node.node, str(node.desired_version), "(all)", "", "", "", "in sync")
        for item in shown:
            table.add_row(
                node.node,
                str(node.desired_version),
                item.item,
                item.source,
                markup(item.desired),
                markup(item.measured),
                "[red]" + (item.code or "drift") + "[/red]" if not item.ok else "ok",
            )
    console = rich_console()
    console.print(table)
    console.print(
        f"{len(report.nodes)} node(s), {len(report.drifted)} drifted"
        + ("" if all(c.ok for c in report.classes) else "; a policy in force is not desired")
    )
    return 0 if report.ok else 1


def _rollout(args: argparse.Namespace) -> int:
    from ironroot.cli._platform_node import PowerLostError
    from ironroot.fleet import ReleaseSet, rollout
    from ironroot.platform import PowerLost

    fleet = _fleet(args)
    name = _class_name(args, fleet)
    releases = ReleaseSet.of_class(fleet.node_class(name))
    for directory in args.releases or []:
        releases.load(directory)
    inject = dict(_pairs(args.inject, "--inject"))
    now = now_or(args.at)
    kwargs: dict[str, Any] = {
        "now": now,
        "node_class": name,
        "wave_size": args.wave_size,
        "nodes": args.node,
        "dry_run": args.dry_run,
        "inject": inject,
        "allow_recovery_removal": args.allow_recovery_removal,
    }
    total = len(args.node) if args.node else len(fleet.node_ids())
    bar = None if args.dry_run else _bar(args, total, "rolling out")
    try:
        if bar is None:
            report = rollout(fleet, releases, **kwargs)
        else:
            with bar:
                task = bar.task_ids[0]

                def progress(event: str, node: str, component: str | None) -> None:
                    if event == "update":
                        bar.update(task, description=f"updating {node} {component}")
                    else:
                        bar.advance(task)

                report = rollout(fleet, releases, progress=progress, **kwargs)
    except PowerLost as lost:  # --inject NODE=STEP cut the power, as `platform update` reports it
        raise PowerLostError(
            f"power lost during {lost.step} (fault drill): the rollout stopped there; boot "
            "the node to see where it ended"
        ) from None
    if args.json:
        print(json.dumps(report.to_json()))
        return 0 if report.ok else 1
    from rich.table import Table

    from ironroot.cli._text import rich_console

    table = Table(
        title=f"rollout of class {name} to desired state v{report.desired_version}: "
        f"{report.waves} wave(s) of {report.wave_size}" + (" (dry run)" if report.dry_run else "")
    )
    for column in ("wave", "node", "outcome", "updates"):
        table.add_column(column)
    for node in report.nodes:
        updates = "; ".join(
            f"{u.component} {u.from_version or '-'} -> {u.to_version}"
            + (" +pfm" if u.with_pfm else "")
            + f": {u.outcome}"
            + (f" ({u.code})" if u.code else "")
            for u in node.updates
        )
        outcome = node.outcome
        if node.node in report.interrupted:
            outcome += " (interrupted earlier)"
        table.add_row(str(node.wave or "-"), node.node, outcome, markup(updates))
    console = rich_console()
    console.print(table)
    counts = report.to_json()["counts"]
    summary = ", ".join(f"{n} {o}" for o, n in counts.items() if n)
    if report.stopped_at is not None:
        summary += f"; stopped at {report.stopped_at}"
    for node in report.nodes:
        if node.mixed:
            runs = ", ".join(f"{c} {v or '-'}" for c, v in node.installed)
            summary += f"; {node.node} is MIXED: runs {runs}, neither old nor desired"
    if report.superseded_by is not None:
        summary += (
            f"; stopped: desired state v{report.superseded_by} was put in force meanwhile "
            "(roll it out)"
        )
    if report.interrupted:
        summary += (
            f"; interrupted earlier: {', '.join(report.interrupted)} (an earlier rollout was cut "
            "short on them: ironroot fleet events --kind rollout-interrupted)"
        )
    console.print(markup(summary) if summary else "no node")
    return 0 if report.ok else 1
