"""``ironroot dashboard``: the trust plane as web pages, read-only (docs/dashboard.md).

``dashboard --data DIR [--host H] [--port P] [--tls-cert C --tls-key K] [--allowed-host N]…``
    serve the dashboard of DIR (its ``dashboard.toml``, or the logs, fleet, HSMs, key release,
    monitors and witnesses found in DIR) until interrupted. The log pages are public; every
    other page needs an operator's login. It answers only requests whose ``Host`` is its own
    address (``localhost``, ``127.0.0.1``, ``[::1]`` on a loopback one) or a name given with
    ``--allowed-host`` or ``allowed_hosts`` in ``dashboard.toml`` (a reverse proxy's).
``dashboard passwd --data DIR --user NAME [--password-file F]``
    add an operator, or set a new password (ending the operator's sessions). The password
    comes from ``--password-file``, ``$IRONROOT_DASHBOARD_PASSWORD`` (the password itself) or
    ``$IRONROOT_DASHBOARD_PASSWORD_FILE`` (a file holding it), or a prompt on a terminal —
    never from an argument.
``dashboard operators --data DIR``
    the operators who may log in (exit 1 when there is none).
"""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from pathlib import Path
from typing import Any, Final

from ironroot.cli._serving import add_server_options, data_dir, listen, secret_env
from ironroot.errors import ConfigError, InputUnavailable, MalformedInput, NotFound

__all__ = ["register"]

_ENV_PASSWORD: Final = "IRONROOT_DASHBOARD_PASSWORD"  # noqa: S105 (a variable's name)
_MAX_PASSWORD_FILE: Final = 4096


def register(sub: Any) -> None:
    group: argparse.ArgumentParser = sub.add_parser(
        "dashboard",
        help="the dashboard: fleet, log, reviews, keys and alerts as web pages",
        description="Serve the dashboard of DIR (read-only); `passwd` adds an operator.",
        epilog="example: ironroot dashboard --data dc --port 8480   "
        "(first: ironroot dashboard passwd --data dc --user alice)",
    )
    add_server_options(group, default_host="127.0.0.1", default_port=8480)
    group.add_argument(
        "--allowed-host",
        action="append",
        default=[],
        metavar="NAME",
        help="a Host name to answer besides the listening address, e.g. a reverse proxy's "
        "dash.example (repeatable; also allowed_hosts in dashboard.toml)",
    )
    group.set_defaults(func=_serve)
    verbs = group.add_subparsers(
        dest="verb",
        metavar="<verb>",
        required=False,
        help="passwd or operators (without a verb: serve the dashboard)",
    )

    passwd = verbs.add_parser(
        "passwd",
        help="add a dashboard operator or set a new password",
        epilog="example: ironroot dashboard passwd --data dc --user alice "
        "(password from a prompt, $IRONROOT_DASHBOARD_PASSWORD_FILE or --password-file)",
    )
    passwd.add_argument("--data", type=Path, help="the dashboard's data directory ($IRONROOT_DATA)")
    passwd.add_argument("--user", required=True, help="the operator's name")
    passwd.add_argument(
        "--password-file", type=Path, help="a file whose first line is the password"
    )
    passwd.set_defaults(func=_passwd)

    operators = verbs.add_parser(
        "operators",
        help="the operators who may log in",
        epilog="example: ironroot dashboard operators --data dc --json",
    )
    operators.add_argument(
        "--data", type=Path, help="the dashboard's data directory ($IRONROOT_DATA)"
    )
    operators.set_defaults(func=_operators)


def _directory(args: argparse.Namespace) -> Path:
    directory = data_dir(args)
    if not directory.is_dir():
        raise InputUnavailable(f"{directory} is not a directory (the dashboard's data directory)")
    return directory


def _password(args: argparse.Namespace) -> str:
    path: Path | None = args.password_file
    if path is not None:
        from ironroot._fileio import read_limited, warn_if_exposed

        warn_if_exposed(path, "a dashboard password")
        data = read_limited(path, _MAX_PASSWORD_FILE)
    else:
        found = secret_env(_ENV_PASSWORD)
        if found is not None:
            data = found
        elif sys.stdin.isatty():
            first = getpass.getpass(f"new password for {args.user}: ")
            if getpass.getpass("again: ") != first:
                raise MalformedInput("the two passwords differ", code="password-mismatch")
            return first
        else:
            raise ConfigError(
                f"give --password-file, or set {_ENV_PASSWORD} (the password itself) or "
                f"{_ENV_PASSWORD}_FILE (a file holding it)"
            )
    try:
        lines = data.decode("utf-8").splitlines()
    except UnicodeDecodeError as exc:
        raise MalformedInput("the password is not UTF-8 text") from exc
    return lines[0] if lines else ""


def _passwd(args: argparse.Namespace) -> int:
    directory = _directory(args)
    password = _password(args)
    from ironroot.web import Operators, SessionKeys, load_dashboard_config

    config = load_dashboard_config(directory)
    added = Operators(config.state_dir).set_password(args.user, password)
    SessionKeys.load(config.state_dir)  # the cookie key exists before the first start
    word = "added" if added else "has a new password (its sessions ended)"
    if args.json:
        print(json.dumps({"user": args.user, "added": added}))
    else:
        print(f"operator {args.user} {word} in {config.state_dir}")
    return 0


def _operators(args: argparse.Namespace) -> int:
    from ironroot.web import Operators, load_dashboard_config

    config = load_dashboard_config(_directory(args))
    names = Operators(config.state_dir).names
    if not names:
        raise NotFound(
            f"no operator in {config.data_dir}: add one with `ironroot dashboard passwd "
            f"--data {config.data_dir} --user NAME`"
        )
    print(json.dumps({"operators": names}) if args.json else "\n".join(names))
    return 0


def _serve(args: argparse.Namespace) -> int:
    directory = _directory(args)
    bind = listen(args, default_host="127.0.0.1", default_port=8480)
    from ironroot import http
    from ironroot.web import Dashboard, load_dashboard_config, serve_dashboard

    config = load_dashboard_config(directory)
    if not config.has_sources:
        raise ConfigError(
            f"{directory} holds nothing to show: no transparency log, fleet, HSM, key release, "
            f"monitor or witness (name them in {directory}/dashboard.toml, docs/dashboard.md)"
        )
    http.check_listen(bind.host, bind.port)
    http.configure_logging(bind.log_level, bind.log_format)
    dashboard = Dashboard(config)
    if not dashboard.operators.names:
        print(
            "no operator can log in yet: only the log pages are visible "
            f"(ironroot dashboard passwd --data {directory} --user NAME)",
            file=sys.stderr,
        )
    for problem in dashboard.problems:
        print(f"ironroot: warning: {problem}", file=sys.stderr)

    def started(url: str) -> None:
        print(f"dashboard of {directory} on {url}/", flush=True)

    serve_dashboard(
        dashboard,
        bind.host,
        bind.port,
        tls=bind.tls,
        on_start=started,
        allowed_hosts=args.allowed_host,
    )
    return 0
