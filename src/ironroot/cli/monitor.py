"""``ironroot monitor``: follow transparency logs; report watched statements and forks.

::

    ironroot monitor once   --state FILE --url URL [--url URL ...] [--key VKEY ...]
                            [--watch-sub SUB ...] [--watch-iss ISS ...]
                            [--witness-key VKEY ... --witness-quorum K]
                            [--max-new-entries N] [--check-timeout SECONDS] [--json]
    ironroot monitor follow ... [--interval SECONDS] [--rounds N]    # one event per line
    ironroot monitor status --state FILE [--json]
    ironroot monitor forks  --state FILE [--out-dir DIR] [--json]
    ironroot monitor verify-fork PROOF --key VKEY [--json]           # offline, for auditors

Each round checks every ``--url`` (the C2SP read API prefix of a transparency service or any
tlog-tiles log) with :class:`ironroot.monitor.Monitor`: the new checkpoint must be consistent
with the last one verified for its origin (kept in ``--state``, SQLite), the new entries must
give its root, and statements whose ``iss``/``sub`` is watched are reported. Without ``--key``
the log's keys are read from its configuration the first time and pinned in the state. Beside
``--state`` is its high-water file ``<state>.verified``: a state rolled back or swapped (a
backup restored, another monitor's file) is refused with exit 1 (docs/witness.md).

Every new entry is also read for the LMS leaves a firmware manifest statement names (its
protected header ``ironroot-lms-leaves``): each key's leaf is kept in the state with the first
entry that used it, and a later entry, on any log followed, whose use of that leaf has another
signature is an ``lms-leaf-reused`` event naming both entries (one-time keys used twice can be
forged); an entry whose leaves header cannot be read is ``lms-leaf-malformed``.

Exit codes (``once``, and ``follow`` when it stops): 0 nothing to report; 1 a fork, an LMS leaf
reused or a leaves header that cannot be read, a log that went back, or anything that did not
verify (a fork's proof is kept: ``monitor forks``); 3 at least one watched statement was seen
(and nothing worse). ``follow`` keeps going after a
failed round once its first round succeeded, and prints each event as it happens (one JSON
object per line with ``--json``).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any, Final

from ironroot import firmware, log, monitor, witness
from ironroot.cli._input import read_input
from ironroot.cli._main import error_object
from ironroot.cli._output import output_folder, write_output
from ironroot.cli._serving import LOG_READ_DEADLINE, add_client_options, client_tls
from ironroot.cli._text import shown
from ironroot.errors import ConfigError, IronrootError, LimitExceeded

__all__ = ["register"]

EXIT_WATCHED: Final = 3
_MAX_PROOF_FILE: Final = 4 * 1024 * 1024
_MAX_INTERVAL: Final = 86400  # a day: time.sleep overflows far above it
_CHECK_TIMEOUT: Final = LOG_READ_DEADLINE
_log = logging.getLogger("ironroot.monitor")
_STATE_HELP: Final = (
    "the monitor's SQLite file; its high-water file FILE.verified beside it (keep them together)"
)


def _follow_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--state", type=Path, required=True, help=_STATE_HELP)
    parser.add_argument(
        "--url",
        action="append",
        required=True,
        help="a log's URL prefix: its C2SP read API (repeatable)",
    )
    parser.add_argument(
        "--key",
        action="append",
        default=[],
        metavar="VKEY",
        help="a log's checkpoint verifier key (repeatable; default: pinned on first use)",
    )
    parser.add_argument(
        "--watch-sub", action="append", default=[], metavar="SUB", help="report this subject"
    )
    parser.add_argument(
        "--watch-iss", action="append", default=[], metavar="ISS", help="report this issuer"
    )
    parser.add_argument(
        "--witness-key",
        action="append",
        default=[],
        metavar="VKEY",
        help="require cosignatures from these witnesses (repeatable)",
    )
    parser.add_argument("--witness-quorum", type=int, help="how many of them (default: all given)")
    parser.add_argument(
        "--max-new-entries",
        type=int,
        default=monitor.DEFAULT_MAX_NEW_ENTRIES,
        metavar="N",
        help="refuse a checkpoint more than N entries beyond the verified size, and reading "
        "more than N verified entries again for a newly watched subject or issuer "
        f"(default {monitor.DEFAULT_MAX_NEW_ENTRIES}; raise it for a first look at a larger log)",
    )
    parser.add_argument(
        "--check-timeout",
        type=float,
        default=_CHECK_TIMEOUT,
        metavar="SECONDS",
        help="give up on a log whose check (every tile and bundle it reads) takes longer "
        f"(default {_CHECK_TIMEOUT:g})",
    )
    add_client_options(parser)


def register(sub: Any) -> None:
    group: argparse.ArgumentParser = sub.add_parser(
        "monitor",
        help="follow transparency logs: consistency, watched statements, forks",
        description="Follow transparency logs: verify that each new checkpoint extends the "
        "last one verified, read the new entries, report watched statements and forks.",
    )
    verbs = group.add_subparsers(dest="verb", metavar="<verb>", required=True)

    once = verbs.add_parser(
        "once",
        help="check every log once",
        epilog="example: ironroot monitor once --state monitor.sqlite3 --url "
        "http://127.0.0.1:8000 --watch-sub pkg:firmware/bmc --json",
    )
    _follow_options(once)
    once.add_argument("--json", action="store_true")
    once.set_defaults(func=_once)

    follow = verbs.add_parser(
        "follow",
        help="check every log, again and again, printing events as they come",
        epilog="example: ironroot monitor follow --state monitor.sqlite3 --url "
        "http://127.0.0.1:8000 --watch-iss https://vendor.example --interval 30",
    )
    _follow_options(follow)
    follow.add_argument("--interval", type=float, default=30.0, help="seconds between rounds")
    follow.add_argument("--rounds", type=int, help="stop after this many rounds")
    # --json streams one event per line here: not the one-object --json of other verbs
    follow.add_argument(
        "--json", dest="ndjson", action="store_true", help="print one JSON object per event"
    )
    follow.set_defaults(func=_follow)

    status = verbs.add_parser(
        "status",
        help="the last checkpoint verified for each origin",
        epilog="example: ironroot monitor status --state monitor.sqlite3 --json",
    )
    status.add_argument("--state", type=Path, required=True, help=_STATE_HELP)
    status.add_argument("--json", action="store_true")
    status.set_defaults(func=_status)

    forks = verbs.add_parser(
        "forks",
        help="the forks found, and their proofs",
        epilog="example: ironroot monitor forks --state monitor.sqlite3 --out-dir forks",
    )
    forks.add_argument("--state", type=Path, required=True, help=_STATE_HELP)
    forks.add_argument("--out-dir", type=Path, help="write each proof there as fork-<id>.json")
    forks.add_argument("--json", action="store_true")
    forks.set_defaults(func=_forks)

    verify = verbs.add_parser(
        "verify-fork",
        help="check a fork proof offline (exit 0: the log forked)",
        epilog="example: ironroot monitor verify-fork fork-1.json --key "
        "transparency.example+5c3a8b1e+AaBb...",
    )
    verify.add_argument("proof", type=Path, help="the fork proof (JSON)")
    verify.add_argument(
        "--key",
        action="append",
        required=True,
        metavar="VKEY",
        help="the log's checkpoint verifier key (repeatable)",
    )
    verify.add_argument("--json", action="store_true")
    verify.set_defaults(func=_verify_fork)


def _shown_url(url: str) -> str:
    """``url`` as the monitor prints, emits and logs it
    (:func:`ironroot._httpclient.shown_url`: no ``user:password@``; a fixed placeholder for
    one that does not parse). Imported here: ``monitor --help`` loads no HTTP client."""
    from ironroot._httpclient import shown_url as without_userinfo

    return without_userinfo(url)


class _LmsLeaves:
    """The LMS leaves a firmware manifest statement logs, as one-time key uses
    (:class:`ironroot.monitor.EntryCheck`)."""

    kind = "lms-leaf"
    label = "LMS leaves"

    @staticmethod
    def uses(entry: bytes) -> tuple[monitor.OneTimeKeyUse, ...]:
        return tuple(
            monitor.OneTimeKeyUse(leaf.key_hash, leaf.leaf, leaf.signature_hash)
            for leaf in firmware.entry_lms_leaves(entry)
        )


def _monitor(args: argparse.Namespace) -> tuple[monitor.Monitor, list[log.NoteVerifier]]:
    keys = [log.NoteVerifier.from_vkey(k) for k in args.key]
    for url in args.url:
        if not url.startswith(("http://", "https://")):
            raise ConfigError(
                f"--url {_shown_url(url)!r}: a log URL starts with http:// or https://"
            )
    policy = None
    if args.witness_key:
        policy = witness.WitnessPolicy.from_vkeys(args.witness_key, args.witness_quorum)
    elif args.witness_quorum is not None:
        raise ConfigError("--witness-quorum needs --witness-key")
    watch = monitor.Watch(frozenset(args.watch_sub), frozenset(args.watch_iss))
    if args.max_new_entries < 1:
        raise ConfigError("--max-new-entries is at least 1")
    if not 0 < args.check_timeout <= 7 * _MAX_INTERVAL:  # also false for NaN
        raise ConfigError(
            f"--check-timeout is a number of seconds above 0, at most {7 * _MAX_INTERVAL}"
        )
    store = monitor.MonitorStore(args.state)
    mon = monitor.Monitor(
        store,
        watch=watch,
        witnesses=policy,
        max_new_entries=args.max_new_entries,
        checks=(_LmsLeaves(),),
    )
    return mon, keys


def _round(
    mon: monitor.Monitor, args: argparse.Namespace, keys: list[log.NoteVerifier], strict: bool
) -> tuple[list[monitor.MonitorEvent], list[tuple[str, IronrootError]]]:
    """One check of every log; failures are collected (raised at once when ``strict``),
    each with its URL as shown (:func:`ironroot._httpclient.shown_url`: never a password)."""
    events: list[monitor.MonitorEvent] = []
    failures: list[tuple[str, IronrootError]] = []
    for url in args.url:
        try:
            fetcher = log.HttpLogFetcher(url, verify=client_tls(args), deadline=args.check_timeout)
            with fetcher:
                events.extend(mon.check(url, fetcher, keys))
        except IronrootError as exc:
            if strict and len(args.url) == 1:
                raise
            failures.append((_shown_url(url), exc))
    return events, failures


def _exit_code(events: list[monitor.MonitorEvent], failures: list[Any]) -> int:
    if failures or any(e.alarm for e in events):
        return 1
    if any(e.kind == "statement" for e in events):
        return EXIT_WATCHED
    return 0


def _once(args: argparse.Namespace) -> int:
    mon, keys = _monitor(args)
    try:
        events, failures = _round(mon, args, keys, strict=True)
    finally:
        mon.store.close()
    code = _exit_code(events, failures)
    if args.json:
        doc: dict[str, Any] = {
            "events": [e.to_json() for e in events],
            "failures": [{"url": url, **error_object(exc)} for url, exc in failures],
        }
        if code == 1:
            doc["error"] = _first_problem(events, failures)
        print(json.dumps(doc))
        return code
    for event in events:  # a statement's iss and sub are its signer's text: shown
        print(shown(event.line()))
    for url, exc in failures:  # a detail may quote the server (a redirect's Location): shown
        print(f"failed {url}: {exc.code}: {shown(exc.detail)}", file=sys.stderr)
    return code


def _first_problem(
    events: list[monitor.MonitorEvent], failures: list[tuple[str, IronrootError]]
) -> dict[str, str | None]:
    for event in events:
        if event.kind == "fork":
            return {"code": "fork-detected", "message": event.line(), "check": None}
    for event in events:
        if event.alarm:
            return {"code": event.kind, "message": event.line(), "check": None}
    url, exc = failures[0]
    return {"code": exc.code, "message": f"{url}: {exc.detail}", "check": exc.check}


def _follow(args: argparse.Namespace) -> int:
    try:
        return _follow_rounds(args)
    except IronrootError as exc:
        if args.ndjson:  # the stream ends with the failure, as one JSON object
            print(json.dumps({"ok": False, "error": error_object(exc)}), flush=True)
        raise


def _follow_rounds(args: argparse.Namespace) -> int:
    if not 0 < args.interval <= _MAX_INTERVAL:  # also false for NaN
        raise ConfigError(f"--interval is a number of seconds above 0, at most {_MAX_INTERVAL}")
    if args.rounds is not None and args.rounds < 1:
        raise ConfigError("--rounds is at least 1")
    mon, keys = _monitor(args)
    worst = 0
    done = 0
    try:
        while True:
            events, failures = _round(mon, args, keys, strict=done == 0)
            if done == 0 and failures and len(failures) == len(args.url):
                raise failures[0][1]  # the first round must work: a configuration error
            for event in events:
                print(
                    json.dumps(event.to_json()) if args.ndjson else shown(event.line()), flush=True
                )
            for url, exc in failures:
                if args.ndjson:
                    print(json.dumps({"event": "error", "url": url, **error_object(exc)}))
                # shown: with no --log-format, Python's last-resort handler writes it as it is
                _log.warning("round %d: %s: %s: %s", done + 1, url, exc.code, shown(exc.detail))
            code = _exit_code(events, failures)
            worst = 1 if 1 in (code, worst) else max(worst, code)
            done += 1
            if args.rounds is not None and done >= args.rounds:
                return worst
            time.sleep(args.interval)
    finally:
        mon.store.close()


def _status(args: argparse.Namespace) -> int:
    store = monitor.MonitorStore(args.state, create=False)
    try:
        states = store.states()
        forks = store.forks()
    finally:
        store.close()
    rows = [
        {"origin": s.origin, "size": s.size, "root": s.root.hex(), "verified_at": s.updated}
        for s in states
    ]
    if args.json:
        print(json.dumps({"logs": rows, "forks": len(forks)}))
        return 0
    if not rows:
        print("no log verified yet")
    for row in rows:  # an origin is the log's text (any character but C0 controls): shown
        print(f"{shown(str(row['origin']))}: size {row['size']} verified at {row['verified_at']}")
    if forks:
        print(f"FORKS: {len(forks)} (ironroot monitor forks)")
    return 0


def _forks(args: argparse.Namespace) -> int:
    store = monitor.MonitorStore(args.state, create=False)
    try:
        forks = store.forks()
    finally:
        store.close()
    rows: list[dict[str, Any]] = []
    for ident, origin, proof, at in forks:
        row: dict[str, Any] = {"id": ident, "origin": origin, "at": at}
        if args.out_dir is not None:
            output_folder(args.out_dir)
            path = args.out_dir / f"fork-{ident}.json"
            write_output(path, proof)
            row["file"] = str(path)
        rows.append(row)
    if args.json:
        print(json.dumps({"forks": rows}))
        return 0
    if not rows:
        print("no fork found")
    for row in rows:
        where = f" -> {row['file']}" if "file" in row else ""
        print(f"#{row['id']} {shown(row['origin'])} at {row['at']}{where}")
    return 0


def _verify_fork(args: argparse.Namespace) -> int:
    try:
        data = read_input(args.proof, _MAX_PROOF_FILE)
    except LimitExceeded:
        raise LimitExceeded(f"{args.proof} is too large to be a fork proof") from None
    proof = witness.ForkProof.parse(data)
    keys = [log.NoteVerifier.from_vkey(k) for k in args.key]
    first, second = proof.verify(keys)
    doc = {
        "fork": True,
        "origin": proof.origin,
        "first": {"size": first.size, "root": first.root.hex()},
        "second": {"size": second.size, "root": second.root.hex()},
        "detected_by": proof.detected_by,
        "detected_at": proof.detected_at,
    }
    if args.json:
        print(json.dumps(doc))
        return 0
    print(f"fork proven: {shown(proof.origin)} signed two trees that no append-only log can hold")
    print(f"first:  size {first.size} root {first.root.hex()}")
    print(f"second: size {second.size} root {second.root.hex()}")
    if first.size == second.size:
        print("(same size, different roots)")
    else:
        print(f"(the second tree's first {first.size} leaves have another root)")
    return 0
