"""``ironroot rot``: root-of-trust commands.

``inspect-cert FILE [--json]`` prints every DICE field of each certificate or CSR in FILE
(PEM or DER, several concatenated allowed); with ``--json``, a JSON list with one object per
certificate or CSR, in file order. Undecodable DICE extensions are listed, not fatal,
so redacted samples can still be inspected; a file that holds no certificate or CSR exits 2.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ironroot.rot import load_dice_objects

__all__ = ["register"]


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("rot", help="silicon root of trust: DICE identities")
    verbs = parser.add_subparsers(dest="verb", metavar="<verb>", required=True)
    inspect = verbs.add_parser(
        "inspect-cert", help="print the DICE fields of certificates or CSRs (PEM or DER)"
    )
    inspect.add_argument("file", type=Path, help="certificate(s) or CSR, PEM or DER")
    inspect.add_argument("--json", action="store_true", help="print JSON")
    inspect.add_argument(
        "--svn-encoding",
        choices=("auto", "caliptra", "plain"),
        default="auto",
        help="how to read TcbInfo SVNs (Caliptra writes 0x100|svn); default auto",
    )
    inspect.set_defaults(func=_inspect)


def _inspect(args: argparse.Namespace) -> int:
    data = args.file.read_bytes()
    objects = load_dice_objects(data, strict=False, svn_encoding=args.svn_encoding)
    documents = [obj.to_json() for obj in objects]
    if args.json:
        print(json.dumps(documents, indent=2))
        return 0
    console = Console()
    for position, doc in enumerate(documents):
        console.print(_table(doc, f"{args.file.name} [{position}]"))
    return 0


def _table(doc: dict[str, Any], title: str) -> Table:
    table = Table(title=title, show_header=False, title_justify="left")
    table.add_column("field", style="bold")
    table.add_column("value", overflow="fold")
    for key in (
        "kind",
        "subject",
        "issuer",
        "serial",
        "not_before",
        "not_after",
        "signature_algorithm",
        "public_key_algorithm",
        "is_ca",
        "key_usage",
        "quirks",
    ):
        value = doc[key]
        if value not in (None, [], ""):
            table.add_row(key, _text(value))
    dice = doc["dice"]
    if dice["ueid"] is not None:
        table.add_row("ueid", _text(dice["ueid"]))
    if dice["key_purposes"]:
        table.add_row("key purposes", _text(dice["key_purposes"]))
    label = "MultiTcbInfo" if dice["multi_tcb_info"] else "TcbInfo"
    for index, tcb in enumerate(dice["tcb_infos"]):
        for key, value in tcb.items():
            if value in (None, []):
                continue
            if key == "fwids":
                value = [f"{f['hash_alg']}:{f['digest']}" for f in value]
            elif key in ("flags", "flags_mask"):
                value = value["names"]
            table.add_row(f"{label}[{index}].{key}", _text(value))
    if dice["open_dice"] is not None:
        for key, value in dice["open_dice"].items():
            if value is not None:
                table.add_row(f"OpenDice.{key}", _text(value))
    for bad in dice["invalid"]:
        table.add_row("invalid extension", _text(f"{bad['oid']}: {bad['reason']}"), style="red")
    return table


def _text(value: object) -> str:
    """Plain text for a cell; escaped, since DICE strings may contain rich markup brackets."""
    if isinstance(value, list):
        return escape(", ".join(str(v) for v in value))
    return escape(str(value))
