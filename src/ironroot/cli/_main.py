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
from collections.abc import Mapping, Sequence
from typing import Final

from ironroot import __version__
from ironroot.errors import IronrootError

# Command → (module under ironroot.cli, one-line help), in the order `--help` lists them. Only
# the module of the group being run is imported: a command pays for its own layer, not for
# every layer (tests/test_cli_main.py checks this table against each module's own parser).
GROUPS: Final[Mapping[str, tuple[str, str]]] = {
    "key": ("keys", "generate and inspect keys"),
    "statement": ("statement", "sign, register and verify Signed Statements"),
    "log": ("log", "check transparency logs"),
    "serve": ("serve", "run the transparency service"),
    "firmware": ("firmware", "build, sign, verify, inspect and publish firmware bundles"),
    "rot": ("rot", "silicon root of trust: DICE identities"),
    "spdm": ("spdm", "SPDM devices and verifiers on the spdm-emu wire"),
    "safe": ("safe", "OCP SAFE Short Form Reports: sign, verify, publish, query"),
    "evidence": ("evidence", "verify attestation evidence offline"),
    "attest": ("attest", "the attestation verifier (EAR results)"),
    "hsm": ("hsm", "the built-in HSM"),
    "keyrelease": ("keyrelease", "secure key release to attested TEEs"),
}


class _Parser(argparse.ArgumentParser):
    """argparse that exits with 2 on usage errors (its default) and prints one line."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        print(f"ironroot: error: {message}", file=sys.stderr)
        raise SystemExit(2)


def _selected(argv: Sequence[str]) -> str | None:
    """The group ``argv`` runs: its first word that is not an option."""
    for word in argv:
        if not word.startswith("-"):
            return word if word in GROUPS else None
    return None


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The parser; with ``argv``, only the group it runs is built in full (the others are
    listed by name and help), so only that group's module is imported. Without, every group."""
    parser = _Parser(prog="ironroot", description="Ironroot: defense-in-depth, silicon to systems.")
    parser.add_argument("--version", action="version", version=f"ironroot {__version__}")
    sub = parser.add_subparsers(dest="group", metavar="<group>", parser_class=_Parser)
    selected = _selected(argv) if argv is not None else None
    for command, (module_name, help_text) in GROUPS.items():
        if argv is not None and command != selected:
            sub.add_parser(command, help=help_text)
            continue
        module = importlib.import_module(f"ironroot.cli.{module_name}")
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    words = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(words)
    args = parser.parse_args(words)
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
