"""``ironroot platform`` verbs that act on a node (``--node DIR`` or ``$IRONROOT_NODE``).

``init``     create a node: the RoT device, the trust file, the PFM and its statement, one
             image and its statements per component, each device's vendor and model;
``show``     the node's state (active, previous and recovery images, the update in progress);
``boot``     the RoT's boot: flash check against the PFM, recovery, measured boot, SPDM;
``update``   one update through the whole state machine (``--inject STEP`` cuts the power at
             that step: a fault drill; boot afterwards to see where it ended);
``measure``  each SPDM device measured against the reference values logged for its image;
``recover``  restore a component's active slot from its recovery image;
``events``   the RoT's event log; ``journal`` the journal's records;
``flash-write`` a write the BMC issues to flash, through the RoT's filter.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ironroot.cli._serving import ENVIRONMENT
from ironroot.cli._text import shown
from ironroot.cli._time import instant, now_or
from ironroot.errors import ConfigError, IronrootError

__all__ = ["node_dir", "node_option", "register_node_verbs"]

_STEPS = (
    "receive",
    "stage",
    "verify",
    "write",
    "verify-write",
    "activate",
    "reboot",
    "health",
    "commit",
    "fail-health",
)  # ironroot.platform.STEPS + FAIL_HEALTH, without loading the platform at start-up


class PowerLostError(IronrootError):
    """The fault drill cut the power (``--inject``): the command stopped where a real power
    loss would have stopped it."""

    code = "power-lost"
    title = "Power Lost (Fault Drill)"
    exit_code = 1


def node_option(parser: argparse.ArgumentParser) -> None:
    """``--node DIR``, as every ``platform`` verb on a node takes it (see :func:`node_dir`)."""
    parser.add_argument(
        "--node", type=Path, help=f"the node's directory (or ${ENVIRONMENT['node']})"
    )


def _at_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--at", type=instant, help="the time to act at (default: now)")


def _inject_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--inject",
        choices=_STEPS,
        metavar="STEP",
        help="fault drill: lose power at STEP (" + ", ".join(_STEPS[:-1]) + "), or "
        "fail-health: the new firmware fails its health check",
    )


def node_dir(args: argparse.Namespace) -> Path:
    """The node's directory: ``--node``, else a non-empty ``$IRONROOT_NODE``; neither is a
    ``ConfigError``."""
    import os

    given = args.node or os.environ.get(ENVIRONMENT["node"])
    if not given:
        raise ConfigError(f"give --node DIR or set {ENVIRONMENT['node']}")
    return Path(given)


@contextmanager
def _drill(step: str | None) -> Iterator[Any]:
    from ironroot.platform import Faults, PowerLost

    try:
        yield Faults(step) if step else None
    except PowerLost as lost:
        raise PowerLostError(
            f"power lost during {lost.step} (fault drill): boot the node to see where it ended"
        ) from None


def register_node_verbs(verbs: Any) -> None:
    init = verbs.add_parser(
        "init",
        help="create a node protected by a provisioned RoT",
        epilog="example: ironroot platform init --node node --rot-device rot "
        "--trust platform.toml --pfm node.pfm --pfm-statement node.pfm.ts "
        "--image bmc=bmc-1.0.bin --statement bmc=bmc-1.0.manifest.ts ... "
        "--device nic=https://vendor.example,pkg:firmware/acme/nic ... "
        "--admin admin --admin-password-file admin.pw",
    )
    node_option(init)
    init.add_argument("--rot-device", required=True, type=Path, help="the provisioned RoT")
    init.add_argument("--trust", required=True, type=Path, help="the platform.toml trust file")
    init.add_argument("--pfm", required=True, type=Path, help="the signed PFM")
    init.add_argument("--pfm-statement", required=True, type=Path, help="its transparent statement")
    init.add_argument(
        "--image", action="append", required=True, metavar="NAME=FILE", help="a component's image"
    )
    init.add_argument(
        "--statement",
        action="append",
        required=True,
        metavar="NAME=FILE",
        help="a transparent statement of a component's image (repeat: manifest, CoRIM)",
    )
    init.add_argument(
        "--device",
        action="append",
        required=True,
        metavar="NAME=VENDOR,MODEL",
        help="an SPDM device's CoRIM class vendor and model",
    )
    init.add_argument(
        "--slot-size", action="append", default=[], metavar="NAME=BYTES", help="a slot size"
    )
    init.add_argument("--admin", help="create the first Redfish Administrator with this name")
    init.add_argument("--admin-password-file", type=Path, help="its password (first line)")
    _at_option(init)
    init.set_defaults(func=_init)

    show = verbs.add_parser(
        "show",
        help="the node's firmware state",
        epilog="example: ironroot platform show --node node --json",
    )
    node_option(show)
    show.set_defaults(func=_show)

    boot = verbs.add_parser(
        "boot",
        help="boot: flash check, recovery, measured boot, SPDM (exit 1 if held in reset)",
        epilog="example: ironroot platform boot --node node",
    )
    node_option(boot)
    _at_option(boot)
    _inject_option(boot)
    boot.set_defaults(func=_boot)

    update = verbs.add_parser(
        "update",
        help="update a component: verify, write, activate, reboot, commit or roll back",
        epilog="example: ironroot platform update bmc-2.0.bin --component bmc --node node "
        "--statement bmc-2.0.manifest.ts [--inject write]",
    )
    update.add_argument("bundle", type=Path, help="the signed firmware bundle")
    update.add_argument("--component", required=True, help="bmc, host, nic, gpu or nvme")
    update.add_argument(
        "--statement",
        action="append",
        default=[],
        type=Path,
        metavar="TS",
        help="a transparent statement for it (repeat): manifest, CoRIM, SAFE review",
    )
    update.add_argument("--pfm", type=Path, help="a new signed PFM to activate with it")
    update.add_argument("--pfm-statement", type=Path, help="the new PFM's transparent statement")
    update.add_argument(
        "--allow-recovery-removal",
        action="append",
        default=[],
        metavar="COMPONENT",
        help="accept that the new PFM no longer lists COMPONENT's recovery image, leaving it "
        "nothing to recover to until an update replaces it (repeat)",
    )
    node_option(update)
    _at_option(update)
    _inject_option(update)
    update.set_defaults(func=_update)

    measure = verbs.add_parser(
        "measure",
        help="measure the SPDM devices against logged reference values (exit 1 on a mismatch)",
        epilog="example: ironroot platform measure --node node",
    )
    node_option(measure)
    _at_option(measure)
    measure.set_defaults(func=_measure)

    recover = verbs.add_parser(
        "recover",
        help="restore a component's active slot from its recovery image",
        epilog="example: ironroot platform recover bmc --node node",
    )
    recover.add_argument("component", help="bmc, host, nic, gpu or nvme")
    node_option(recover)
    _at_option(recover)
    recover.set_defaults(func=_recover)

    events = verbs.add_parser(
        "events", help="the RoT's event log", epilog="example: ironroot platform events --node node"
    )
    node_option(events)
    events.set_defaults(func=_events)

    journal = verbs.add_parser(
        "journal",
        help="the RoT's journal: each state change of the node",
        epilog="example: ironroot platform journal --node node",
    )
    node_option(journal)
    journal.set_defaults(func=_journal)

    write = verbs.add_parser(
        "flash-write",
        help="a write the BMC issues to flash, through the RoT's filter",
        epilog="example: ironroot platform flash-write --chip bmc --offset 0x1000 --data-file x",
    )
    node_option(write)
    write.add_argument("--chip", required=True, help="the flash chip (a component)")
    write.add_argument("--offset", required=True, help="byte offset in the chip")
    write.add_argument("--data-file", required=True, type=Path, help="the bytes to write")
    _at_option(write)
    write.set_defaults(func=_flash_write)


def _pairs(specs: list[str], what: str) -> list[tuple[str, str]]:
    out = []
    for spec in specs:
        name, sep, rest = spec.partition("=")
        if not sep or not name or not rest:
            raise ConfigError(f"{what} {spec!r}: expected NAME=…")
        out.append((name, rest))
    return out


def _read(path: Path, limit: int = 512 * 1024 * 1024) -> bytes:
    from ironroot._fileio import read_limited

    return read_limited(path, limit)


def _init(args: argparse.Namespace) -> int:
    from ironroot.platform import DeviceInfo, Platform, PlatformTrust

    node = node_dir(args)
    if (args.admin is None) != (args.admin_password_file is None):
        raise ConfigError("--admin and --admin-password-file go together")
    images = {name: _read(Path(path)) for name, path in _pairs(args.image, "--image")}
    statements: dict[str, list[bytes]] = {name: [] for name in images}
    for name, path in _pairs(args.statement, "--statement"):
        statements.setdefault(name, []).append(_read(Path(path)))
    devices = {}
    for name, rest in _pairs(args.device, "--device"):
        vendor, sep, model = rest.partition(",")
        if not sep or not vendor or not model:
            raise ConfigError(f"--device {name}={rest!r}: expected NAME=VENDOR,MODEL")
        devices[name] = DeviceInfo(vendor, model)
    sizes = {}
    for name, value in _pairs(args.slot_size, "--slot-size"):
        try:
            sizes[name] = int(value, 0)
        except ValueError:
            raise ConfigError(f"--slot-size {name}: {value!r} is not a number") from None
    platform = Platform.create(
        node,
        rot=args.rot_device,
        trust=PlatformTrust.load_toml(args.trust),
        pfm=_read(args.pfm),
        pfm_statement=_read(args.pfm_statement),
        images=images,
        statements=statements,
        devices=devices,
        now=now_or(args.at),
        slot_sizes=sizes or None,
    )
    if args.admin is not None:
        from ironroot.platform._redfish_accounts import AccountStore

        AccountStore.create(node, args.admin, args.admin_password_file)
    state = platform.show()
    if args.json:
        print(json.dumps(state))
    else:
        print(f"created node {shown(state['platform'])} in {shown(str(node))}")
        _print_components(state)
    return 0


def _print_components(state: dict[str, Any]) -> None:
    for name, c in state["components"].items():
        active, recovery = c["active"], c["recovery"]
        line = f"  {name:5} active {shown(active['version']) if active else '-':8}"
        line += f" svn {active['svn'] if active else '-':<3} recovery "
        line += f"{shown(recovery['version']) if recovery else '-':8}"
        line += f" healthy boots {c['healthy_boots']}"
        print(line)
    if state.get("pending"):
        p = state["pending"]
        print(f"  update in progress: {p['component']} at {shown(str(p['step']))}")


def _show(args: argparse.Namespace) -> int:
    from ironroot.platform import Platform

    state = Platform.open(node_dir(args)).show()
    if args.json:
        print(json.dumps(state))
    else:
        print(
            f"node {shown(state['platform'])}: {state['boots']} boots, PFM svn "
            f"{state['pfm']['active']['svn'] if state['pfm']['active'] else '-'}"
        )
        _print_components(state)
    return 0


def _print_boot(report: Any) -> None:
    for c in report.components:
        state = "running" if c.running else "HELD IN RESET"
        extra = " (restored from recovery)" if c.recovered else ""
        why = f": {c.code}: {shown(c.detail)}" if not c.running else ""
        if c.running and c.validity:
            why = f" (reported: {shown(str(c.validity))})"
        version = shown(c.image.version) if c.image else "-"
        print(f"  {c.name:5} {version:8} {state}{extra}{why}")
    if report.update:
        print(f"  update of {report.update_component}: {shown(str(report.update))}")
    for name in report.recovery_replaced:
        print(f"  {name}: recovery image replaced")


def _boot(args: argparse.Namespace) -> int:
    from ironroot.platform import Platform

    with _drill(args.inject) as faults:
        report = Platform.open(node_dir(args)).boot(now=now_or(args.at), faults=faults)
    if args.json:
        print(json.dumps(report.to_json()))
    else:
        print("boot: " + ("every component running" if report.ok else "not every component runs"))
        _print_boot(report)
    return 0 if report.ok else 1


def _update(args: argparse.Namespace) -> int:
    from ironroot.platform import Platform

    if (args.pfm is None) != (args.pfm_statement is None):
        raise ConfigError("--pfm and --pfm-statement go together")
    node = Platform.open(node_dir(args))
    bundle = _read(args.bundle)
    statements = [_read(p) for p in args.statement]

    def progress(step: str, percent: int) -> None:
        if not args.json:
            print(f"  {percent:3}% {step}", file=sys.stderr)

    with _drill(args.inject) as faults:
        result = node.update(
            args.component,
            bundle,
            statements,
            now=now_or(args.at),
            pfm=_read(args.pfm) if args.pfm else None,
            pfm_statement=_read(args.pfm_statement) if args.pfm_statement else None,
            faults=faults,
            progress=progress,
            allow_recovery_removal=args.allow_recovery_removal,
        )
    if args.json:
        print(json.dumps(result.to_json()))
    else:
        print(
            f"{result.component} {result.image.version} (svn {result.image.svn}): {result.outcome}"
        )
        _print_boot(result.boot)
    return 0 if result.outcome == "committed" else 1


def _measure(args: argparse.Namespace) -> int:
    from ironroot.platform import Platform

    results = Platform.open(node_dir(args)).measure(now=now_or(args.at))
    if args.json:
        print(json.dumps({"devices": [r.to_json() for r in results]}))
    else:
        for r in results:
            print(
                f"  {r.name:5} "
                + (
                    "matches its logged reference values"
                    + (f" (reported: {shown(str(r.validity))})" if r.validity else "")
                    if r.ok
                    else f"MISMATCH: {r.code}: {shown(r.detail)}"
                )
            )
    return 0 if all(r.ok for r in results) else 1


def _recover(args: argparse.Namespace) -> int:
    from ironroot.platform import Platform

    image = Platform.open(node_dir(args)).recover(args.component, now=now_or(args.at))
    value = {
        "component": args.component,
        "version": image.version,
        "svn": image.svn,
        "sha384": image.sha384.hex(),
    }
    print(
        json.dumps(value)
        if args.json
        else f"{args.component}: restored {image.version} (svn {image.svn}) from recovery"
    )
    return 0


def _events(args: argparse.Namespace) -> int:
    from ironroot.platform import Platform

    events = Platform.open(node_dir(args)).events()
    if args.json:
        print(json.dumps({"events": [e.to_json() for e in events]}))
    else:
        for e in events:
            print(f"{e.seq:5} {e.at} {e.severity:8} {shown(e.message_id)}: {shown(e.message)}")
    return 0


def _journal(args: argparse.Namespace) -> int:
    from ironroot.platform import Platform

    records = Platform.open(node_dir(args)).journal()
    if args.json:
        print(json.dumps({"records": records}))
    else:
        for r in records:
            print(f"{r['ctr']:5} {r['at']} {shown(str(r['step']))}")
    return 0


def _flash_write(args: argparse.Namespace) -> int:
    from ironroot.platform import Platform

    try:
        offset = int(args.offset, 0)
    except ValueError:
        raise ConfigError(f"--offset {args.offset!r} is not a number") from None
    data = _read(args.data_file, 1024 * 1024)
    Platform.open(node_dir(args)).bmc_write(args.chip, offset, data, now=now_or(args.at))
    value = {"chip": args.chip, "offset": offset, "length": len(data)}
    print(
        json.dumps(value) if args.json else f"wrote {len(data)} bytes to {args.chip} at {offset:#x}"
    )
    return 0
