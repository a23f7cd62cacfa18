"""``ironroot demo [OPTIONS]``: the datacenter story and its staged attacks (``make demo``).

The demo is the top layer — it drives every other one, this CLI's included — so the CLI does
not import it: this verb becomes that program, ``python -m ironroot.demo`` (``exec``: same
process, so Ctrl-C and the exit status are the demo's), with the options given here — the same
as that program's (docs/demo.md). Exit 0 when every act ran and every attack was refused with
its exact error, 1 otherwise.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

__all__ = ["demo_argv", "register"]


def register(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser(
        "demo",
        help="the datacenter story, then staged attacks refused with their exact errors",
        epilog="example: ironroot demo --quick --json demo-report.json",
    )
    parser.add_argument("--nodes", type=int, default=12, help="fleet size (at least 3)")
    parser.add_argument("--wave-size", type=int, default=4, help="nodes per rollout wave")
    parser.add_argument("--quick", action="store_true", help="a small fleet (3 nodes, waves of 2)")
    parser.add_argument(
        "--json",
        dest="report",
        metavar="FILE",
        help="write the report as JSON (docs/demo.md); '-': to stdout, the story on stderr",
    )
    parser.add_argument(
        "--serve",
        action="store_true",
        help="leave the services (and the dashboard, when installed) running until Ctrl-C",
    )
    parser.add_argument(
        "--workdir", metavar="DIR", help="work in DIR (kept) instead of a temporary directory"
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    parser.add_argument(
        "--width",
        type=int,
        help="console width when there is no terminal (40 to 1000; default: detect)",
    )
    parser.set_defaults(func=_demo)


def demo_argv(args: argparse.Namespace) -> list[str]:
    """The ``python -m ironroot.demo`` command line for the options parsed here."""
    argv = [sys.executable, "-m", "ironroot.demo"]
    if args.quick:
        argv.append("--quick")
    else:
        argv += ["--nodes", str(args.nodes), "--wave-size", str(args.wave_size)]
    for flag, value in (("--json", args.report), ("--workdir", args.workdir)):
        if value is not None:
            argv += [flag, value]
    if args.width is not None:
        argv += ["--width", str(args.width)]
    argv += [flag for flag, on in (("--serve", args.serve), ("--keep", args.keep)) if on]
    return argv


def _demo(args: argparse.Namespace) -> int:
    argv = demo_argv(args)
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(argv[0], argv)  # noqa: S606  # the interpreter itself, with fixed arguments
    return 1  # not reached: execv replaces this process or raises OSError
