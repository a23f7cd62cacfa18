"""``ironroot log``: check a transparency log end to end; create and migrate its store;
export and serve it as static tiles.

``ironroot log verify DIR|URL [--checkpoint FILE] [--origin ORIGIN] [--key VKEY ...]
[--receipt-keys FILE ...] [--json]``

* ``DIR`` — a data directory: its log (``log.sqlite3``, or the PostgreSQL schema its
  ``[log] store`` names, read in one snapshot) is recomputed from its entries and
  every tile, checkpoint, index and the state row is compared (``ironroot.log.verify_log``),
  and every batch's stored receipt signature is checked against the recomputed root at its
  size (once per batch). Only public material is read: the checkpoint key from
  ``keys/checkpoint.pub.pem`` and the origin from ``ironroot.toml`` unless ``--key`` /
  ``--origin`` are given; receipt keys from ``keys/receipt-keys.cbor`` unless
  ``--receipt-keys`` is given (a COSE Key Set such as ``/.well-known/scitt-keys`` serves, or a
  public key file). A log holding receipt signatures with no receipt keys to check them fails.
* ``URL`` — a log's C2SP read API (``http://`` or ``https://`` prefix): the checkpoint, entry
  bundles and tiles are fetched, recomputed and compared; keys and origin come from
  ``/.well-known/transparency-configuration`` unless both ``--key`` and ``--origin`` are given
  (fetched over ``https://``, or plain ``http://`` from a loopback address only: keys anyone
  on the path could swap are refused, exit 2). The whole read is bounded: ``--deadline
  SECONDS``, by default an hour (``LOG_READ_DEADLINE``, the monitor's ``--check-timeout``),
  past which it is exit 1 (``unreachable``).

* ``DIR`` holding static tiles (a ``checkpoint`` file and ``tile/``, as ``ironroot log
  export-tiles`` writes them) — checked like a URL, from the files; give ``--origin`` and
  ``--key`` (static tiles carry no keys). A URL that serves no transparency configuration
  (a static mirror) needs them too.

``--checkpoint FILE`` also checks that an earlier signed checkpoint is consistent with the log.
Exit 0 with a summary; exit 1 with the reason when anything differs or does not verify.
A data directory's receipt times are read too: every batch whose receipt ``iat`` is earlier
than the batch before it is a finding (``finding: receipt time goes back …``; ``findings`` in
``--json``, code ``receipt-time-back``), not a failure: ``[transparency]
reset_receipt_time_from`` moves receipt times back once on purpose, after a clock that jumped
ahead. A URL or static tiles carry no receipt signatures: ``findings`` is then empty.

``ironroot log export-tiles`` and ``ironroot log serve-tiles``: see ``cli/_log_tiles.py``.

``ironroot log migrate [DIR | --dsn URL [--schema NAME]] [--check] [--json]``

Creates the log store that ``DIR``'s ``ironroot.toml`` configures (or the PostgreSQL schema at
``--dsn``), or brings its schema up to this Ironroot's version, in one transaction. The service
creates an empty store itself but refuses an older schema until this has run, and always
refuses a newer one. ``--check`` changes nothing: exit 0 when the schema is current, 1 when it
is absent, older or newer.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import sys
from pathlib import Path
from typing import Any

from ironroot import log, transparency
from ironroot.cli import _log_tiles
from ironroot.cli._input import read_input
from ironroot.cli._log_tiles import add_deadline_option, deadline_of, identity_of
from ironroot.cli._main import error_object
from ironroot.cli._serving import add_client_options, client_tls
from ironroot.cli._text import shown
from ironroot.errors import ConfigError, IronrootError, LimitExceeded

__all__ = ["register"]

_MAX_CHECKPOINT_FILE = 1 << 20


def register(sub: Any) -> None:
    group: argparse.ArgumentParser = sub.add_parser("log", help="check transparency logs")
    verbs = group.add_subparsers(dest="verb", metavar="<verb>", required=True)
    verify = verbs.add_parser(
        "verify", help="recompute a log (data directory or URL) and check everything it holds"
    )
    verify.add_argument("target", metavar="DIR|URL", help="data directory or log URL prefix")
    verify.add_argument(
        "--checkpoint", type=Path, metavar="FILE", help="an earlier signed checkpoint to check"
    )
    verify.add_argument("--origin", help="the log origin (default: from the directory or server)")
    verify.add_argument(
        "--key",
        action="append",
        default=[],
        metavar="VKEY",
        help="a checkpoint verifier key <name>+<id>+<key> (repeatable)",
    )
    verify.add_argument(
        "--receipt-keys",
        action="append",
        default=[],
        type=Path,
        metavar="FILE",
        help="receipt public keys: a COSE Key Set or a public key file (repeatable; default: "
        "DIR/keys/receipt-keys.cbor)",
    )
    add_deadline_option(verify)
    verify.add_argument("--json", action="store_true", help="print the result as JSON")
    add_client_options(verify)
    verify.set_defaults(func=_verify)
    _log_tiles.register(verbs)

    migrate = verbs.add_parser(
        "migrate",
        help="create the log store or bring its schema up to date",
        description="Create the log store DIR's ironroot.toml configures (or the PostgreSQL "
        "schema at --dsn), or migrate its schema to this version, in one transaction.",
    )
    migrate.add_argument(
        "target", nargs="?", type=Path, metavar="DIR", help="data directory (its [log] store)"
    )
    migrate.add_argument(
        "--dsn", metavar="URL", help="a postgresql:// URL instead of DIR (or IRONROOT_PG_DSN)"
    )
    migrate.add_argument("--schema", metavar="NAME", help="the PostgreSQL schema (with --dsn)")
    migrate.add_argument(
        "--check", action="store_true", help="change nothing: exit 1 unless the schema is current"
    )
    migrate.add_argument("--json", action="store_true", help="print the result as JSON")
    migrate.epilog = "example: ironroot log migrate ts   |   ironroot log migrate --dsn $DSN"
    migrate.set_defaults(func=_migrate)


def _read_checkpoint(path: Path) -> bytes:
    try:
        return read_input(path, _MAX_CHECKPOINT_FILE)
    except LimitExceeded:
        raise ConfigError(f"{path} is too large to be a checkpoint") from None


def _run(
    args: argparse.Namespace,
) -> tuple[log.LogReport, transparency.ReceiptBatchVerifier | None]:
    earlier = _read_checkpoint(args.checkpoint) if args.checkpoint is not None else None
    verifiers = tuple(log.NoteVerifier.from_vkey(k) for k in args.key)
    target: str = args.target
    url = target.startswith(("http://", "https://"))
    deadline = deadline_of(args, url=url)
    if url:
        if args.receipt_keys:
            raise ConfigError("--receipt-keys checks a data directory's stored receipts, not a URL")
        if verifiers and args.origin is None:
            raise ConfigError("--key needs --origin when checking a URL")
        with log.HttpLogFetcher(target, verify=client_tls(args), deadline=deadline) as fetcher:
            identity = identity_of(args, lambda: log.fetch_log_identity(fetcher), url=target)
            report = log.verify_remote_log(fetcher, identity=identity, earlier_checkpoint=earlier)
            return report, None
    data_dir = Path(target)
    if not data_dir.is_dir():
        raise ConfigError(f"{data_dir} is not a directory (or an http(s) URL)")
    store = log.StoreConfig.of_data_dir(data_dir)
    if store.kind == "sqlite" and not log.layout.log_db_path(data_dir).exists():
        if (data_dir / "checkpoint").is_file():  # static tiles (ironroot log export-tiles)
            if args.receipt_keys:
                raise ConfigError("--receipt-keys checks a data directory, not static tiles")
            static = log.DirectoryLogFetcher(data_dir)
            report = log.verify_remote_log(
                static, identity=identity_of(args, None), earlier_checkpoint=earlier
            )
            return report, None
        raise ConfigError(f"{data_dir} holds no log ({log.layout.LOG_DB}) and no checkpoint")
    receipts = _receipt_verifier(data_dir, args.receipt_keys)
    report = log.verify_log_dir(
        data_dir,
        origin=args.origin,
        verifiers=verifiers or None,
        earlier_checkpoint=earlier,
        batch_verifier=receipts,
    )
    return report, receipts


def _receipt_verifier(data_dir: Path, given: list[Path]) -> transparency.ReceiptBatchVerifier:
    if given:
        return transparency.ReceiptBatchVerifier(
            transparency.load_receipt_keys(given), source="--receipt-keys"
        )
    default = log.layout.receipt_keys_path(data_dir)
    if default.exists():
        return transparency.ReceiptBatchVerifier(
            transparency.load_receipt_keys([default]), source=str(default)
        )
    return transparency.ReceiptBatchVerifier({}, source=f"no {default}; give --receipt-keys")


def _verify(args: argparse.Namespace) -> int:
    try:
        report, receipts = _run(args)
    except IronrootError as exc:
        if not args.json:
            raise
        json.dump({"ok": False, "error": error_object(exc)}, sys.stdout)
        print()
        return exc.exit_code
    findings = receipts.times_back if receipts is not None else []
    if args.json:
        json.dump(
            {"ok": True, **report.to_json(), "findings": [f.to_json() for f in findings]},
            sys.stdout,
        )
        print()
        return 0
    print(f"ok: log {shown(report.origin)} verified")
    print(f"size:        {report.size}")
    print(f"root:        {base64.b64encode(report.root).decode('ascii')}")
    print(f"entries:     {report.entries} in {report.entry_bundles} entry bundles")
    print(f"tiles:       {report.tiles}")
    print(f"checkpoints: {report.checkpoints}")
    if report.batch_signatures:
        print(f"receipt signatures: {report.batch_signatures} verified")
    if report.pending:
        print(f"pending:     {report.pending}")
    if report.earlier_checkpoint_size is not None:
        print(f"consistent with the earlier checkpoint at size {report.earlier_checkpoint_size}")
    for finding in findings:
        print(f"finding: {shown(str(finding))}")
    return 0


def _store_to_migrate(args: argparse.Namespace) -> tuple[log.StoreConfig, Path | None]:
    if args.target is not None:
        if args.dsn is not None or args.schema is not None:
            raise ConfigError("give DIR or --dsn (with --schema), not both")
        if not args.target.is_dir():
            raise ConfigError(f"{args.target} is not a directory")
        if not log.layout.config_path(args.target).is_file():
            raise ConfigError(
                f"{args.target} is not a data directory (no {log.layout.CONFIG_FILE}): the "
                "service creates one on first start (ironroot serve --init-only)"
            )
        return log.StoreConfig.of_data_dir(args.target), args.target
    table: dict[str, object] = {"store": "postgresql"}
    if args.dsn is not None:
        table["dsn"] = args.dsn
    if args.schema is not None:
        table["schema"] = args.schema
    if args.dsn is None and not os.environ.get(log.DSN_ENV):
        raise ConfigError(f"give DIR, --dsn URL or set {log.DSN_ENV}")
    return log.StoreConfig.from_table(table), None


def _migrate_store(args: argparse.Namespace) -> log.SchemaStatus:
    config, data_dir = _store_to_migrate(args)
    return config.migrate(data_dir or Path("."), check=args.check)


def _migrate(args: argparse.Namespace) -> int:
    try:
        result = _migrate_store(args)
    except IronrootError as exc:
        if not args.json:
            raise
        json.dump({"ok": False, "error": error_object(exc)}, sys.stdout)
        print()
        return exc.exit_code
    if args.json:
        json.dump({"ok": result.current, **result.to_json()}, sys.stdout)
        print()
        return 0 if result.current else 1
    if args.check:
        state = "current" if result.current else ("absent" if not result.version else "not current")
        print(
            f"{result.where}: schema version {result.version}, this Ironroot's is "
            f"{result.latest} ({state})"
        )
        return 0 if result.current else 1
    if result.before == result.version:
        print(f"{result.where}: schema version {result.version} is current; nothing to do")
    elif not result.before:
        print(f"{result.where}: created, schema version {result.version}")
    else:
        print(f"{result.where}: migrated from schema version {result.before} to {result.version}")
    return 0
