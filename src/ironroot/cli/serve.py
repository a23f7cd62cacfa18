"""``ironroot serve``: run the transparency service on a data directory."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ironroot.transparency import init_data_dir, load_config, serve


def register(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser(
        "serve",
        help="run the transparency service",
        description="Serve the transparency service from DIR, creating DIR, its ironroot.toml "
        "and its service keys on first start.",
    )
    parser.add_argument("--data", required=True, type=Path, help="data directory")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", default=8000, type=int)
    parser.add_argument(
        "--issuer", default="https://transparency.example", help="service_issuer on first start"
    )
    parser.add_argument(
        "--init-only", action="store_true", help="create the data directory and keys, then exit"
    )
    parser.set_defaults(func=_serve)


def _serve(args: argparse.Namespace) -> int:
    init_data_dir(args.data, service_issuer=args.issuer)
    if args.init_only:
        config = load_config(args.data)
        print(f"initialized {args.data} (issuer {config.service_issuer}, origin {config.origin})")
        return 0
    serve(args.data, args.host, args.port)
    return 0
