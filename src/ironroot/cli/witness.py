"""``ironroot witness``: run a C2SP tlog-witness, and ask one to cosign a log's checkpoint.

::

    ironroot witness init --data DIR --name NAME [--algorithm Ed25519|ML-DSA-44] [--log-key VKEY]
    ironroot witness add-log --data DIR VKEY [--origin ORIGIN]
    ironroot witness serve --data DIR [server options]          # DIR/witness.toml
    ironroot witness show --data DIR [--json]                   # keys, logs, cosigned sizes
    ironroot witness evidence --data DIR [--out-dir DIR] [--json]   # refused checkpoints, forks
    ironroot witness cosign --url WITNESS --log-url LOG_URL [--witness-key VKEY] [--out FILE]

``cosign`` is the log's side of the protocol for a log that does not do it itself: it reads
the log's checkpoint, gets the witness's cosignatures (with the consistency proof computed
from the log's tiles, retrying from the size a 409 names) and prints (or writes) the
checkpoint with them appended. Exit 1 when the witness refuses (``unknown-log``,
``untrusted-checkpoint``, ``inconsistent-checkpoint``, ``fork-detected``, ...).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from ironroot import log, witness
from ironroot.cli._output import output_folder, write_output
from ironroot.cli._serving import (
    add_client_options,
    add_server_options,
    client_tls,
    data_dir,
    listen,
)
from ironroot.cli._text import shown
from ironroot.errors import ConfigError

__all__ = ["register"]


def register(sub: Any) -> None:
    group: argparse.ArgumentParser = sub.add_parser(
        "witness",
        help="run a C2SP tlog-witness; have a log's checkpoint cosigned",
        description="A witness cosigns a log's checkpoints only with a consistency proof from "
        "the last one it cosigned (c2sp.org/tlog-witness), and keeps the proof of a fork.",
    )
    verbs = group.add_subparsers(dest="verb", metavar="<verb>", required=True)

    init = verbs.add_parser(
        "init",
        help="create a witness data directory: witness.toml and cosigning keys",
        epilog="example: ironroot witness init --data witness --name witness.example/w1 "
        "--log-key transparency.example+5c3a8b1e+AaBb...",
    )
    init.add_argument("--data", type=Path, help="the witness's data directory")
    init.add_argument("--name", required=True, help="the witness's name (a schema-less URL)")
    init.add_argument(
        "--algorithm",
        action="append",
        choices=("Ed25519", "ML-DSA-44"),
        help="cosignature key type (repeatable; default Ed25519)",
    )
    init.add_argument(
        "--log-key",
        action="append",
        default=[],
        metavar="VKEY",
        help="a log to witness: its checkpoint vkey, named by its origin (repeatable)",
    )
    init.set_defaults(func=_init)

    add = verbs.add_parser(
        "add-log",
        help="witness one more log (its vkey, or the keys a running service publishes)",
        epilog="example: ironroot witness add-log --data witness "
        "transparency.example+5c3a8b1e+AaBb...   (or: --log-url http://127.0.0.1:8000)",
    )
    add.add_argument("--data", type=Path, help="the witness's data directory")
    add.add_argument("vkey", nargs="?", help="the log's checkpoint verifier key")
    add.add_argument("--origin", help="the log's origin (default: the key's name)")
    add.add_argument(
        "--log-url",
        help="take origin and keys from this service's /.well-known/transparency-configuration "
        "(check what it prints)",
    )
    add_client_options(add)
    add.set_defaults(func=_add_log)

    serve = verbs.add_parser(
        "serve",
        help="serve DIR/witness.toml over HTTP (add-checkpoint)",
        epilog="example: ironroot witness serve --data witness --port 8300",
    )
    add_server_options(serve, default_host="witness.toml's, else 127.0.0.1", default_port=8300)
    serve.set_defaults(func=_serve)

    show = verbs.add_parser(
        "show",
        help="the witness's keys, logs and the size it cosigned for each",
        epilog="example: ironroot witness show --data witness --json",
    )
    show.add_argument("--data", type=Path, help="the witness's data directory")
    show.add_argument("--json", action="store_true")
    show.set_defaults(func=_show)

    evidence = verbs.add_parser(
        "evidence",
        help="checkpoints the witness refused as inconsistent, and fork proofs",
        epilog="example: ironroot witness evidence --data witness --out-dir forks",
    )
    evidence.add_argument("--data", type=Path, help="the witness's data directory")
    evidence.add_argument(
        "--out-dir", type=Path, help="write each fork proof there as fork-<id>.json"
    )
    evidence.add_argument("--json", action="store_true")
    evidence.set_defaults(func=_evidence)

    cosign = verbs.add_parser(
        "cosign",
        help="have a witness cosign a log's latest checkpoint",
        epilog="example: ironroot witness cosign --url http://127.0.0.1:8300 "
        "--log-url http://127.0.0.1:8000 --witness-key witness.example/w1+0a1b2c3d+BASE64",
    )
    cosign.add_argument("--url", required=True, help="the witness's URL prefix")
    cosign.add_argument("--log-url", required=True, help="the log's URL prefix (its C2SP read API)")
    cosign.add_argument(
        "--witness-key",
        action="append",
        required=True,
        metavar="VKEY",
        help="the witness's cosigning key: answers are checked against it (repeatable)",
    )
    cosign.add_argument(
        "--key",
        action="append",
        default=[],
        metavar="VKEY",
        help="the log's checkpoint key (default: from the log's configuration)",
    )
    cosign.add_argument("--out", type=Path, help="write the cosigned checkpoint here")
    cosign.add_argument("--json", action="store_true")
    add_client_options(cosign)
    cosign.set_defaults(func=_cosign)


def _init(args: argparse.Namespace) -> int:
    data = data_dir(args)
    verifiers = [log.NoteVerifier.from_vkey(k) for k in args.log_key]
    logs = [witness.WitnessedLog(v.name, (v,)) for v in verifiers]
    config = witness.init_witness_dir(
        data, name=args.name, algorithms=args.algorithm or ["Ed25519"], logs=logs
    )
    keys = [c.verifier().vkey for c in config.cosigners()]
    print(f"witness {shown(config.name)} in {shown(str(data))}: give logs this key")
    for key in keys:
        print(shown(key))
    return 0


def _add_log(args: argparse.Namespace) -> int:
    data = data_dir(args)
    if (args.vkey is None) == (args.log_url is None):
        raise ConfigError("give the log's VKEY or --log-url, one of them")
    if args.vkey is not None:
        verifier = log.NoteVerifier.from_vkey(args.vkey)
        entry = witness.WitnessedLog(args.origin or verifier.name, (verifier,))
    else:
        with log.HttpLogFetcher(args.log_url, verify=client_tls(args)) as fetcher:
            identity = log.fetch_log_identity(fetcher)
        entry = witness.WitnessedLog(args.origin or identity.origin, identity.verifiers)
    config = witness.add_log(data, entry)
    print(f"witnessing {shown(entry.origin)} ({len(config.logs)} logs) with the log key(s):")
    for verifier in entry.verifiers:
        print(shown(verifier.vkey))
    return 0


def _serve(args: argparse.Namespace) -> int:
    from ironroot.http import check_listen, configure_logging

    data = data_dir(args)
    config = witness.load_witness_config(data)
    bind = listen(
        args,
        file_host=config.host,
        file_port=config.port,
        default_host="127.0.0.1",
        default_port=8300,
    )
    check_listen(bind.host, bind.port)
    configure_logging(bind.log_level, bind.log_format)
    witness.serve_witness(data, bind.host, bind.port, tls=bind.tls)
    return 0


def _show(args: argparse.Namespace) -> int:
    data = data_dir(args)
    opened = witness.open_witness(data)
    try:
        latest = {c.origin: c for c in opened.store.all_latest()}
        logs: list[dict[str, Any]] = [
            {
                "origin": entry.origin,
                "keys": [v.vkey for v in entry.verifiers],
                "cosigned_size": latest[entry.origin].size if entry.origin in latest else None,
                "cosigned_at": latest[entry.origin].updated if entry.origin in latest else None,
            }
            for entry in opened.logs
        ]
        doc: dict[str, Any] = {
            "name": opened.name,
            "keys": [v.vkey for v in opened.verifiers],
            "logs": logs,
            "evidence": len(opened.evidence()),
        }
    finally:
        opened.close()
    if args.json:
        print(json.dumps(doc))
        return 0
    print(f"witness {shown(doc['name'])}")
    for key in doc["keys"]:
        print(f"key:      {shown(key)}")
    for entry in logs:
        size = entry["cosigned_size"]
        print(f"log:      {shown(entry['origin'])} (cosigned: {'none' if size is None else size})")
    print(f"evidence: {doc['evidence']}")
    return 0


def _evidence(args: argparse.Namespace) -> int:
    opened = witness.open_witness(data_dir(args))
    try:
        items = opened.evidence()
    finally:
        opened.close()
    rows = []
    for item in items:
        row: dict[str, Any] = {
            "id": item.id,
            "origin": item.origin,
            "kind": item.kind,
            "detail": item.detail,
            "at": item.at,
        }
        if item.kind == "fork" and args.out_dir is not None:
            output_folder(args.out_dir)
            path = args.out_dir / f"fork-{item.id}.json"
            write_output(path, item.data)
            row["file"] = str(path)
        rows.append(row)
    if args.json:
        print(json.dumps({"evidence": rows}))
        return 0
    if not rows:
        print("no evidence: every checkpoint submitted was consistent")
    for row in rows:
        where = f" -> {row['file']}" if "file" in row else ""
        origin, detail = shown(row["origin"]), shown(row["detail"])
        print(f"#{row['id']} {shown(row['kind'])} {origin}: {detail}{shown(where)}")
    return 0


def _cosign(args: argparse.Namespace) -> int:
    verifiers = tuple(witness.CosignatureVerifier.from_vkey(k) for k in args.witness_key)
    with log.HttpLogFetcher(args.log_url, verify=client_tls(args)) as fetcher:
        keys = tuple(log.NoteVerifier.from_vkey(k) for k in args.key)
        if not keys:
            keys = log.fetch_log_identity(fetcher).verifiers
        note, checkpoint = log.fetch_checkpoint(fetcher, keys)
        tree = log.TileTree(fetcher, checkpoint.size)
        with witness.WitnessClient(
            args.url, verify=client_tls(args), verifiers=verifiers
        ) as client:
            lines, _ = client.cosign(note, lambda old: tree.consistency_proof(old))
    parsed = log.Note.parse(note)
    fresh = {(line.name, line.key_id) for line in lines}
    kept = tuple(s for s in parsed.signatures if (s.name, s.key_id) not in fresh)
    cosigned = log.Note(parsed.body, kept + lines).encode()
    if args.out is not None:
        write_output(args.out, cosigned)
    if args.json:
        print(
            json.dumps(
                {
                    "origin": checkpoint.origin,
                    "size": checkpoint.size,
                    "cosignatures": [line.name for line in lines],
                    "checkpoint": cosigned.decode("utf-8"),
                }
            )
        )
        return 0
    if args.out is None:
        print(cosigned.decode("utf-8"), end="")
    else:
        where = shown(str(args.out))
        print(f"{shown(checkpoint.origin)} at size {checkpoint.size}: cosigned; written to {where}")
    return 0
