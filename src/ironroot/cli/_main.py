"""Entry point: ``ironroot <group> <verb>``, one module per verb group.

Each group module exposes ``register(subparsers)`` which adds its parser and sets
``func(args) -> int`` on each verb. Exit codes: 0 success, 1 a verification or policy failure,
2 a usage error or malformed input. Every ``IronrootError`` becomes one line on stderr and its
``exit_code``; no traceback reaches the user.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from ironroot import __version__
from ironroot.errors import IronrootError

# Group modules under ironroot.cli, registered in this order; a module that does not exist
# yet (a layer not built) is simply absent from the command.
_GROUPS: Sequence[str] = (
    "keys",
    "statement",
    "log",
    "serve",
    "firmware",
    "rot",
    "spdm",
    "safe",
    "evidence",
    "attest",
    "hsm",
    "keyrelease",
)


class _Parser(argparse.ArgumentParser):
    """argparse that exits with 2 on usage errors (its default) and prints one line."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        print(f"ironroot: error: {message}", file=sys.stderr)
        raise SystemExit(2)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="ironroot", description="Ironroot: defense-in-depth, silicon to systems.")
    parser.add_argument("--version", action="version", version=f"ironroot {__version__}")
    sub = parser.add_subparsers(dest="group", metavar="<group>", parser_class=_Parser)
    for name in _GROUPS:
        try:
            module = importlib.import_module(f"ironroot.cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"ironroot.cli.{name}":
                continue
            raise
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(sys.argv[1:] if argv is None else list(argv))
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        return int(func(args))
    except IronrootError as exc:
        print(f"ironroot: {exc.code}: {exc.detail}", file=sys.stderr)
        return exc.exit_code
    except OSError as exc:
        where = f": {exc.filename}" if exc.filename else ""
        print(f"ironroot: {exc.strerror or exc}{where}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
