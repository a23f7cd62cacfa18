"""``ironroot platform account``: the Redfish accounts of a node (``--node DIR`` or
``$IRONROOT_NODE``), edited while its Redfish service is stopped (a running service owns the
file: use its ``AccountService`` then).

``account add NAME --role Administrator|Operator|ReadOnly --password-file F``
    a new account; its password is the first line of ``F``;
``account list [--json]``
    the accounts: id, name, role, enabled, locked;
``account remove NAME``
    remove an account (never the last enabled Administrator).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from ironroot.cli._input import read_input
from ironroot.cli._platform_node import node_dir, node_option
from ironroot.cli._text import shown
from ironroot.errors import InputUnavailable, MalformedInput, NotFound

__all__ = ["register_account_verbs"]

_ROLES = ("Administrator", "Operator", "ReadOnly")  # ironroot.platform._redfish_accounts.ROLES


def register_account_verbs(verbs: Any) -> None:
    account = verbs.add_parser("account", help="the node's Redfish accounts")
    account_verbs = account.add_subparsers(dest="account_verb", metavar="<verb>", required=True)

    add = account_verbs.add_parser(
        "add",
        help="add a Redfish account",
        epilog="example: ironroot platform account add --node node ops --role Operator "
        "--password-file ops.pw",
    )
    node_option(add)
    add.add_argument("name", help="the user name")
    add.add_argument("--role", required=True, choices=_ROLES, help="the account's role")
    add.add_argument(
        "--password-file", required=True, type=Path, help="its password (the first line)"
    )
    add.set_defaults(func=_add)

    listing = account_verbs.add_parser(
        "list",
        help="list the Redfish accounts",
        epilog="example: ironroot platform account list --node node --json",
    )
    node_option(listing)
    listing.set_defaults(func=_list)

    remove = account_verbs.add_parser(
        "remove",
        help="remove a Redfish account",
        epilog="example: ironroot platform account remove --node node ops",
    )
    node_option(remove)
    remove.add_argument("name", help="the user name")
    remove.set_defaults(func=_remove)


def _stopped(node: Path) -> Any:
    """The lock the node's Redfish service holds while it runs (``InUse`` when it does)."""
    from ironroot._fileio import DirectoryLock
    from ironroot.platform import Platform

    Platform.open(node)  # a node (NotFound, ConfigError otherwise)
    return DirectoryLock(node, ".redfish.lock", what="node (its Redfish service is running)")


def _password(path: Path) -> str:
    try:
        data = read_input(path, 4096)
    except OSError as exc:
        raise InputUnavailable(f"{path}: {exc.strerror or exc}") from exc
    try:
        lines = data.decode("utf-8").splitlines()
    except UnicodeDecodeError:
        raise MalformedInput(f"{path} is not UTF-8 text") from None
    return lines[0] if lines else ""


def _add(args: argparse.Namespace) -> int:
    from ironroot.platform._redfish_accounts import ACCOUNTS_FILE, AccountStore

    node = node_dir(args)
    password = _password(args.password_file)
    with _stopped(node):
        if (node / ACCOUNTS_FILE).exists():
            account = AccountStore.open(node).add(args.name, password, args.role)
        elif args.role != "Administrator":
            raise NotFound(f"{node} has no Redfish accounts: the first is an Administrator")
        else:
            account = AccountStore.create_with(node, args.name, password).get("1")
    value = {"id": account.id, "name": account.username, "role": account.role}
    print(json.dumps(value) if args.json else f"added {account.username} ({account.role})")
    return 0


def _list(args: argparse.Namespace) -> int:
    from ironroot.platform._redfish_accounts import AccountStore

    store = AccountStore.open(node_dir(args))
    rows = [
        {
            "id": a.id,
            "name": a.username,
            "role": a.role,
            "enabled": a.enabled,
            "locked": store.locked(a.id),  # from some source address
        }
        for a in store.accounts()
    ]
    if args.json:
        print(json.dumps(rows))
    else:
        for row in rows:
            flags = ("" if row["enabled"] else " disabled") + (" locked" if row["locked"] else "")
            print(f"{row['id']:>3} {shown(str(row['name'])):32} {shown(str(row['role']))}{flags}")
    return 0


def _remove(args: argparse.Namespace) -> int:
    from ironroot.platform._redfish_accounts import AccountStore

    node = node_dir(args)
    with _stopped(node):
        store = AccountStore.open(node)
        account = store.by_name(args.name)
        if account is None:
            raise NotFound(f"no account {args.name!r}")
        store.remove(account.id)
    print(json.dumps({"removed": args.name}) if args.json else f"removed {args.name}")
    return 0
