"""``ironroot log export-tiles`` and ``ironroot log serve-tiles``: the log as static files.

``ironroot log export-tiles OUT (--data DIR | --url URL [--deadline SECONDS]) [--origin O
--key VKEY ...] [--follow [--interval SECONDS]] [--json]``

Writes the log's checkpoint, tiles and entry bundles under ``OUT`` in the C2SP tlog-tiles
layout, byte for byte what the service serves (``ironroot.log.export_tiles``: everything is
verified before it is written, full tiles are never rewritten, the checkpoint comes last).
The source is the service's data directory (``--data``: its store read as served, the
witnessed checkpoint when witnesses are configured) or a running service or another mirror
(``--url``). Keys: the data directory's public checkpoint key, the service's
``/.well-known/transparency-configuration`` (over ``https://``, or ``http://`` from a loopback
address only), or ``--origin`` with ``--key``. Reading a URL is bounded as ``log verify URL``
reads it: each request on its own, and the whole read by ``--deadline SECONDS`` (by default an
hour, ``LOG_READ_DEADLINE``, the monitor's ``--check-timeout``), past which it is exit 1
(``unreachable``): a server trickling its answers cannot keep an export running for ever.
``--follow`` keeps the directory current, polling every ``--interval`` seconds until
SIGINT/SIGTERM; a source that is down is retried (one that took longer than ``--deadline``
for a step too), anything that does not verify stops it with exit 1.

``ironroot log serve-tiles DIR [--host H] [--port P]`` serves such a directory over HTTP with
the service's content types and cache headers (``ironroot.transparency.create_tiles_app``),
and nothing outside it: no symbolic link inside ``DIR`` is followed (a 404, as for a missing
file).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ironroot import log
from ironroot._fileio import read_limited
from ironroot.cli._main import error_object
from ironroot.cli._output import output_folder
from ironroot.cli._serving import (
    LOG_READ_DEADLINE,
    add_client_options,
    add_server_options,
    client_tls,
    listen,
)
from ironroot.cli._text import shown
from ironroot.errors import (
    ConfigError,
    InputUnavailable,
    IronrootError,
    LimitExceeded,
    NotFound,
    StorageError,
    VerificationFailed,
)
from ironroot.http import stop_on_signals

__all__ = ["add_deadline_option", "deadline_of", "identity_of", "register"]

_WITNESSED_CHECKPOINT = "witnessed-checkpoint"  # ironroot.transparency.WITNESSED_CHECKPOINT
_MAX_NOTE = 1 << 20


def register(verbs: Any) -> None:
    export = verbs.add_parser(
        "export-tiles",
        help="write the log as static C2SP tlog-tiles files (checkpoint, tiles, entry bundles)",
        description="Write the log's checkpoint, tiles and entry bundles under OUT, as the "
        "service serves them, for any static web server, object store or CDN.",
    )
    export.add_argument("out", metavar="OUT", type=Path, help="the directory to write")
    source = export.add_mutually_exclusive_group(required=True)
    source.add_argument("--data", type=Path, help="the service's data directory")
    source.add_argument("--url", help="a running service (or another mirror): its URL prefix")
    export.add_argument("--origin", help="the log origin (with --key)")
    export.add_argument(
        "--key",
        action="append",
        default=[],
        metavar="VKEY",
        help="a checkpoint verifier key <name>+<id>+<key> (repeatable)",
    )
    add_deadline_option(export)
    export.add_argument(
        "--follow", action="store_true", help="keep exporting as the log grows, until stopped"
    )
    export.add_argument(
        "--interval",
        type=float,
        default=2.0,
        metavar="SECONDS",
        help="with --follow: seconds between polls (default 2)",
    )
    # --json streams one object per step with --follow: not the one-object --json of other verbs
    export.add_argument(
        "--json",
        dest="ndjson",
        action="store_true",
        help="print the result as JSON (with --follow: one object per line, per step)",
    )
    add_client_options(export)
    export.epilog = "example: ironroot log export-tiles mirror --data tsdata --follow"
    export.set_defaults(func=_export)

    serve = verbs.add_parser(
        "serve-tiles",
        help="serve an exported tile directory over HTTP, with the service's cache headers",
    )
    serve.add_argument("directory", metavar="DIR", type=Path, help="an export-tiles directory")
    add_server_options(serve, default_host="127.0.0.1", default_port=8080, data=False)
    serve.epilog = "example: ironroot log serve-tiles mirror --port 8080"
    serve.set_defaults(func=_serve)


def add_deadline_option(parser: argparse.ArgumentParser) -> None:
    """``--deadline SECONDS``: how long reading a log URL may take in all (:func:`deadline_of`)."""
    parser.add_argument(
        "--deadline",
        type=float,
        metavar="SECONDS",
        help="with a URL: give up (exit 1, unreachable) when reading the whole log takes "
        "longer; each request is bounded on its own either way (default "
        f"{LOG_READ_DEADLINE:g}, as monitor --check-timeout)",
    )


def deadline_of(args: argparse.Namespace, *, url: bool) -> float | None:
    """The seconds reading a log URL may take in all: ``--deadline``, else
    ``LOG_READ_DEADLINE`` (its range is the fetcher's to check, exit 2); ``None`` for a
    directory, where ``--deadline`` is ``ConfigError``: nothing is read over the network."""
    deadline: float | None = args.deadline
    if url:
        return LOG_READ_DEADLINE if deadline is None else deadline
    if deadline is not None:
        raise ConfigError("--deadline bounds reading a log URL, not a data directory")
    return None


def identity_of(
    args: argparse.Namespace,
    fetch: Callable[[], log.LogIdentity] | None,
    *,
    url: str | None = None,
) -> log.LogIdentity:
    """``--origin`` with ``--key``, else what ``fetch`` finds (``ConfigError`` advising the
    options when there is nothing to fetch keys from), whose origin must be ``--origin``
    when that is given (:class:`VerificationFailed`: another log than the one asked for).
    Keys are never fetched from ``url`` (the log fetched from) over plain HTTP to a host
    other than the loopback (``ConfigError``): anyone on the path could swap them."""
    verifiers = tuple(log.NoteVerifier.from_vkey(k) for k in args.key)
    if verifiers:
        if args.origin is None:
            raise ConfigError("--key needs --origin")
        return log.LogIdentity(origin=args.origin, verifiers=verifiers)
    if fetch is None:
        raise ConfigError("static tiles carry no keys: give --origin and --key")
    if url is not None:
        from ironroot._httpclient import in_clear_elsewhere  # httpx: only for a URL

        if in_clear_elsewhere(url):
            raise ConfigError(
                "keys fetched over plain HTTP could be swapped by anyone on the path: give "
                "the log's --origin and --key, or an https:// URL (http:// is read for keys "
                "from a loopback address only)"
            )
    try:
        identity = fetch()
    except NotFound as exc:
        raise ConfigError(
            f"{exc.detail}: static tiles carry no keys; give --origin and --key (the "
            "service's checkpoint_origin and checkpoint_keys)"
        ) from exc
    if args.origin is not None and identity.origin != args.origin:
        raise VerificationFailed(
            f"the log names its origin {identity.origin[:300]!r}, not {args.origin!r} (--origin)"
        )
    return identity


class _Watched:
    """The source, remembering its last failure (a source that is down is retried)."""

    def __init__(self, source: log.LogFetcher) -> None:
        self.source = source
        self.failure: BaseException | None = None

    def fetch(self, path: str, *, accept: str | None = None) -> bytes:
        try:
            return self.source.fetch(path, accept=accept)
        except StorageError as exc:
            self.failure = exc
            raise


def _witnessed(data: Path) -> Callable[[], bytes] | None:
    """The witnessed checkpoint reader when the service publishes only witnessed ones."""
    from ironroot.transparency import load_config

    if not load_config(data).witness_quorum:
        return None
    path = data / _WITNESSED_CHECKPOINT

    def read() -> bytes:
        """Read as the service reads it: a named pipe is not waited on, a larger file is not
        cut to a note that cannot verify; what is no note file is a :class:`StorageError`
        (``--follow`` retries it: the service replaces the file atomically)."""
        try:
            note = read_limited(path, _MAX_NOTE)
        except FileNotFoundError:
            raise StorageError("no checkpoint has been witnessed yet") from None
        except LimitExceeded:
            raise StorageError(f"{path} is too large to be a checkpoint") from None
        except InputUnavailable as exc:
            raise StorageError(f"cannot read {path}: {exc.detail}") from None
        except OSError as exc:
            raise StorageError(f"cannot read {path}: {exc.strerror}") from None
        if not note:
            raise StorageError(f"{path} is empty")
        return note

    return read


def _check_holds_log(data: Path) -> None:
    """``ConfigError`` unless ``data`` holds a log: its SQLite file, or an ``ironroot.toml``
    whose ``[log] store`` names another store."""
    config = log.StoreConfig.of_data_dir(data)
    if config.kind == "sqlite" and not log.layout.log_db_path(data).exists():
        raise ConfigError(f"{data} holds no log ({log.layout.LOG_DB})")


@contextmanager
def _data_source(data: Path) -> Iterator[log.LogFetcher]:
    """The data directory's store (SQLite, or the PostgreSQL its ``[log] store`` names), read
    as the service serves it (opened read-only)."""
    _check_holds_log(data)
    store = log.open_store(data, read_only=True, create=False)
    try:
        yield log.StoreLogFetcher(store, checkpoint=_witnessed(data))
    finally:
        store.close()


@contextmanager
def _source(args: argparse.Namespace) -> Iterator[log.LogFetcher]:
    """The source, read (a URL) within ``--deadline`` from its opening."""
    deadline = deadline_of(args, url=args.data is None)
    if args.data is not None:
        with _data_source(args.data) as fetcher:
            yield fetcher
        return
    if not args.url.startswith(("http://", "https://")):
        raise ConfigError("--url must start with http:// or https://")
    with log.HttpLogFetcher(args.url, verify=client_tls(args), deadline=deadline) as fetcher:
        yield fetcher


def _identity(args: argparse.Namespace, source: log.LogFetcher | None) -> log.LogIdentity:
    """The log's origin and keys: ``--origin`` with ``--key``, the data directory's, or
    what the URL ``source`` serves."""
    if args.data is not None:
        _check_holds_log(args.data)
        if args.key:
            return identity_of(args, None)
        return log.layout.load_log_identity(args.data, origin=args.origin)
    assert source is not None
    return identity_of(args, lambda: log.fetch_log_identity(source), url=args.url)


def _print(report: log.ExportReport, identity: log.LogIdentity, out: Path, as_json: bool) -> None:
    if as_json:
        keys = [v.vkey for v in identity.verifiers]
        json.dump({"ok": True, **report.to_json(), "directory": str(out), "keys": keys}, sys.stdout)
        print(flush=True)
        return
    if report.source_behind:
        print(f"the source is behind ({report.size} entries here); nothing written", flush=True)
        return
    print(
        f"exported {shown(report.origin)} at size {report.size} (was {report.previous_size}) "
        f"to {shown(str(out))}: "
        f"{report.tiles} tiles, {report.entry_bundles} entry bundles written, "
        f"{report.removed} partial files removed",
        flush=True,
    )


def _export(args: argparse.Namespace) -> int:
    try:
        return _run_export(args)
    except IronrootError as exc:
        if args.ndjson:  # the output ends with the failure, as one JSON object
            print(json.dumps({"ok": False, "error": error_object(exc)}), flush=True)
        raise


def _run_export(args: argparse.Namespace) -> int:
    output_folder(args.out, make=False)  # before the source is read (the export makes it)
    if not args.follow:
        with _source(args) as source:  # one read of a URL, its keys too, within --deadline
            identity = _identity(args, source)
            report = log.export_tiles(source, args.out, identity=identity)
        _print(report, identity, args.out, args.ndjson)
        if not args.ndjson:
            print(f"origin: {shown(identity.origin)}")
            for verifier in identity.verifiers:
                print(f"key:    {shown(verifier.vkey)}")
        return 0
    if not 0.05 <= args.interval <= 3600:
        raise ConfigError("--interval must be between 0.05 and 3600 seconds")
    if args.data is not None:  # its store is opened at each step (retried when it fails)
        identity = _identity(args, None)
    else:
        with _source(args) as source:
            identity = _identity(args, source)
    last = -1
    warned: str | None = None
    with stop_on_signals() as stop:
        while not stop.is_set():
            watched: _Watched | None = None
            try:
                with _source(args) as source:
                    watched = _Watched(source)
                    report = log.export_tiles(watched, args.out, identity=identity)
            except StorageError as exc:
                # the source is down (or its store could not be opened): retry; anything
                # else, the directory included, stops the mirror
                if watched is not None and exc is not watched.failure:
                    raise
                if exc.detail != warned:  # once per distinct failure, not once per poll
                    print(f"warning: {shown(exc.detail)}; retrying", file=sys.stderr, flush=True)
                    warned = exc.detail
            else:
                warned = None
                if report.size != last or report.checkpoint_written:
                    _print(report, identity, args.out, args.ndjson)
                    last = report.size
            stop.wait(args.interval)
    return 0


def _serve(args: argparse.Namespace) -> int:
    from ironroot import http, transparency

    if not args.directory.is_dir():
        raise ConfigError(f"{args.directory} is not a directory")
    checkpoint = args.directory / "checkpoint"
    if checkpoint.is_symlink() or not checkpoint.is_file():  # a link is never served
        raise ConfigError(
            f"{args.directory} holds no checkpoint: run ironroot log export-tiles into it first"
        )
    bind = listen(args, default_host="127.0.0.1", default_port=8080)
    http.check_listen(bind.host, bind.port)
    http.configure_logging(bind.log_level, bind.log_format)
    app = transparency.create_tiles_app(args.directory)
    print(f"serving {args.directory} on {bind.scheme}://{bind.host}:{bind.port}", flush=True)
    http.run_server(http.server_config(app, bind.host, bind.port, tls=bind.tls))
    return 0
