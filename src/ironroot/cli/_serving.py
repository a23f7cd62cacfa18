"""The options every ``serve`` verb and every HTTP client verb share, declared once.

Servers: ``--data``, ``--host``, ``--port``, ``--log-level``, ``--log-format``, ``--tls-cert``,
``--tls-key``, ``--tls-client-ca``. Clients: ``--ca``, ``--client-cert``, ``--client-key``.
Each option may also come from an environment variable, and a service's configuration file
may give host and port; the precedence is **flag > environment > file > built-in default**:

=====================  ==========================
option                 environment variable
=====================  ==========================
``--data``             ``IRONROOT_DATA``
``--host``             ``IRONROOT_HOST``
``--port``             ``IRONROOT_PORT``
``--log-level``        ``IRONROOT_LOG_LEVEL``
``--log-format``       ``IRONROOT_LOG_FORMAT``
``--tls-cert``         ``IRONROOT_TLS_CERT``
``--tls-key``          ``IRONROOT_TLS_KEY``
``--tls-client-ca``    ``IRONROOT_TLS_CLIENT_CA``
``--ca``               ``IRONROOT_CA``
``--client-cert``      ``IRONROOT_CLIENT_CERT``
``--client-key``       ``IRONROOT_CLIENT_KEY``
``--url``              ``IRONROOT_URL``
``--token``            ``IRONROOT_TOKEN`` (the value) or ``IRONROOT_TOKEN_FILE`` (a file)
=====================  ==========================

A secret may come from the environment in exactly one of two forms: ``NAME`` holds the value,
``NAME_FILE`` names a file holding it. Both set is a ``ConfigError`` rather than a guess.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Final

from ironroot.errors import ConfigError, IronrootError

if TYPE_CHECKING:
    import ssl

    from ironroot.http import ServerTls

__all__ = [
    "ENVIRONMENT",
    "LOG_READ_DEADLINE",
    "MAX_SECRET",
    "Listen",
    "add_client_options",
    "add_server_options",
    "add_url_options",
    "client_tls",
    "data_dir",
    "hsm_credential",
    "listen",
    "secret_env",
    "token",
    "url",
]

ENVIRONMENT: Final = {
    "data": "IRONROOT_DATA",
    "host": "IRONROOT_HOST",
    "port": "IRONROOT_PORT",
    "log_level": "IRONROOT_LOG_LEVEL",
    "log_format": "IRONROOT_LOG_FORMAT",
    "tls_cert": "IRONROOT_TLS_CERT",
    "tls_key": "IRONROOT_TLS_KEY",
    "tls_client_ca": "IRONROOT_TLS_CLIENT_CA",
    "ca": "IRONROOT_CA",
    "client_cert": "IRONROOT_CLIENT_CERT",
    "client_key": "IRONROOT_CLIENT_KEY",
    "url": "IRONROOT_URL",
    "node": "IRONROOT_NODE",
}
_LOG_FORMATS: Final = ("text", "json")  # ironroot.http.LOG_FORMATS, without loading it
LOG_READ_DEADLINE: Final = 3600.0
"""Seconds a command reads a log URL for at most, all its requests together, unless told
otherwise (``log verify --deadline``, ``monitor --check-timeout``): a log that answers each
request just within its own timeout cannot hold its reader for ever."""


def _env(name: str) -> str | None:
    value = os.environ.get(ENVIRONMENT[name])
    return value if value else None


def add_server_options(
    parser: argparse.ArgumentParser, *, default_host: str, default_port: int, data: bool = True
) -> None:
    """The server options (defaults are applied by :func:`listen`, after env and file)."""
    if data:
        parser.add_argument(
            "--data", type=Path, help="the service's data directory (or $IRONROOT_DATA)"
        )
    parser.add_argument(
        "--host", help=f"address to listen on (or $IRONROOT_HOST; default {default_host})"
    )
    parser.add_argument(
        "--port",
        type=int,
        help=f"TCP port 1-65535 (or $IRONROOT_PORT; default {default_port})",
    )
    parser.add_argument(
        "--log-level",
        help="debug, info, warning or error (or $IRONROOT_LOG_LEVEL; default info)",
    )
    parser.add_argument(
        "--log-format",
        choices=_LOG_FORMATS,
        help="log lines as text or JSON (or $IRONROOT_LOG_FORMAT; default text)",
    )
    parser.add_argument(
        "--tls-cert", type=Path, help="serve HTTPS: certificate chain, PEM ($IRONROOT_TLS_CERT)"
    )
    parser.add_argument("--tls-key", type=Path, help="its private key, PEM ($IRONROOT_TLS_KEY)")
    parser.add_argument(
        "--tls-client-ca",
        type=Path,
        help="mutual TLS: require client certificates from this CA ($IRONROOT_TLS_CLIENT_CA)",
    )


def data_dir(args: argparse.Namespace) -> Path:
    """``--data``, or ``$IRONROOT_DATA`` (``ConfigError`` when neither is given)."""
    given = getattr(args, "data", None) or _env("data")
    if not given:
        raise ConfigError("give --data DIR or set IRONROOT_DATA")
    return Path(given)


@dataclass(frozen=True, slots=True)
class Listen:
    """Where and how a service listens, resolved flag > environment > file > default."""

    host: str
    port: int
    log_level: str
    log_format: str
    tls: ServerTls | None

    @property
    def scheme(self) -> str:
        return "https" if self.tls is not None else "http"


def listen(
    args: argparse.Namespace,
    *,
    file_host: str | None = None,
    file_port: int | None = None,
    default_host: str,
    default_port: int,
) -> Listen:
    """Resolve the server options; ``ConfigError`` for a port that is not a number, TLS half
    given, or TLS files that do not load."""
    host = args.host or _env("host") or file_host or default_host
    port: int | None = args.port
    if port is None and _env("port") is not None:
        try:
            port = int(_env("port") or "")
        except ValueError:
            raise ConfigError(f"IRONROOT_PORT={_env('port')!r} is not a port number") from None
    if port is None:
        port = file_port if file_port is not None else default_port
    level = args.log_level or _env("log_level") or "info"
    fmt = args.log_format or _env("log_format") or "text"
    if fmt not in _LOG_FORMATS:
        raise ConfigError(f"log format {fmt!r}: one of {', '.join(_LOG_FORMATS)}")
    cert = args.tls_cert or _env("tls_cert")
    key = args.tls_key or _env("tls_key")
    client_ca = args.tls_client_ca or _env("tls_client_ca")
    tls = None
    if cert or key or client_ca:
        if not (cert and key):
            raise ConfigError("HTTPS needs both --tls-cert and --tls-key")
        from ironroot.http import ServerTls

        tls = ServerTls(Path(cert), Path(key), Path(client_ca) if client_ca else None)
    return Listen(host, port, level, fmt, tls)


def add_client_options(parser: argparse.ArgumentParser) -> None:
    """``--ca`` and, for mutual TLS, ``--client-cert``/``--client-key``."""
    parser.add_argument(
        "--ca", type=Path, help="trust this CA (PEM) for HTTPS, not the system's ($IRONROOT_CA)"
    )
    parser.add_argument(
        "--client-cert", type=Path, help="mutual TLS: client certificate ($IRONROOT_CLIENT_CERT)"
    )
    parser.add_argument(
        "--client-key", type=Path, help="mutual TLS: its private key ($IRONROOT_CLIENT_KEY)"
    )


def client_tls(args: argparse.Namespace) -> ssl.SSLContext | bool:
    """What a client verb passes as ``verify``: ``True`` (the system's CAs) when no TLS
    option is given, else a context from ``--ca`` / ``--client-cert`` / ``--client-key``."""
    ca = getattr(args, "ca", None) or _env("ca")
    cert = getattr(args, "client_cert", None) or _env("client_cert")
    key = getattr(args, "client_key", None) or _env("client_key")
    if not (ca or cert or key):
        return True
    from ironroot.http import client_context

    return client_context(ca, cert, key)


def secret_env(name: str) -> bytes | None:
    """The secret in ``$NAME`` (the value itself) or in the file ``$NAME_FILE`` names (one
    trailing newline dropped); ``None`` when neither is set, ``ConfigError`` when both are, or
    when ``$NAME`` holds the name of an existing file: a path put in the value variable by
    mistake is refused, not tried (a wrong credential counts toward an identity's lockout)."""
    value, path = os.environ.get(name), os.environ.get(f"{name}_FILE")
    if value and path:
        raise ConfigError(
            f"both {name} (the value) and {name}_FILE (a file holding it) are set: unset one"
        )
    if value:
        if "/" in value and Path(value).is_file():
            raise ConfigError(
                f"{name} holds the secret itself, and its value names a file: set {name}_FILE "
                "to name a file (the value was not tried)"
            )
        return os.fsencode(value)  # the bytes as given, UTF-8 or not
    if path:
        from ironroot._fileio import warn_if_exposed
        from ironroot.cli._input import read_secret

        try:  # within a cap: $NAME_FILE=/dev/zero was read until memory ran out
            data = read_secret(path, MAX_SECRET)
        except OSError as exc:
            raise ConfigError(f"{name}_FILE={path}: {exc.strerror or exc}") from exc
        except IronrootError as exc:
            raise ConfigError(f"{name}_FILE={path}: {exc.detail}") from exc
        warn_if_exposed(Path(path), f"the secret in {name}_FILE")
        return data[:-1] if data.endswith(b"\n") else data
    return None


MAX_SECRET: Final = 64 * 1024
"""The largest secret file read (a credential, a token, a password: bytes, not megabytes)."""

_ENV_HSM_CREDENTIAL: Final = "IRONROOT_HSM_CREDENTIAL"


def hsm_credential(path: Path | None, prompt: str = "HSM credential: ") -> bytes:
    """An HSM identity's credential: from ``path`` (``--credential-file``, one trailing line
    end dropped), else ``$IRONROOT_HSM_CREDENTIAL`` or the file ``$IRONROOT_HSM_CREDENTIAL_FILE``
    names, else asked for on a terminal (``ConfigError`` with no terminal)."""
    if path is not None:
        from ironroot._fileio import warn_if_exposed
        from ironroot.cli._input import read_secret

        warn_if_exposed(path, "an HSM credential")
        return read_secret(path, MAX_SECRET).rstrip(b"\r\n")
    from_env = secret_env(_ENV_HSM_CREDENTIAL)
    if from_env is not None:
        return from_env
    if not sys.stdin.isatty():
        raise ConfigError(
            f"give --credential-file, or set {_ENV_HSM_CREDENTIAL} (the credential itself) or "
            f"{_ENV_HSM_CREDENTIAL}_FILE (a file holding it)"
        )
    import getpass

    return getpass.getpass(prompt).encode()


def add_approver_option(parser: argparse.ArgumentParser) -> None:
    """``--approver NAME[=FILE]``, repeatable: the other crypto officers approving the
    command's one dual-control operation with its arguments (the HSM's officer quorum)."""
    parser.add_argument(
        "--approver",
        action="append",
        metavar="NAME[=FILE]",
        help="another crypto officer approving this command's operation with its arguments "
        "(dual control: the HSM's officer quorum); FILE holds its credential, else it is "
        "asked for; repeat for each",
    )


def hsm_approvers(given: Sequence[str] | None) -> list[tuple[str, bytes]]:
    """``--approver NAME=FILE`` (the file holds that officer's credential, read as
    ``--credential-file`` is) or ``NAME`` (asked for on a terminal) as ``(name, credential)``
    pairs for a dual-control operation's approval; ``ConfigError`` for ``NAME=`` or, with no
    terminal, a bare ``NAME``."""
    pairs = []
    for value in given or ():
        name, sep, path = value.partition("=")
        if sep and not path:
            raise ConfigError(f"--approver {value}: give NAME=FILE, or NAME alone for a prompt")
        if sep:
            pairs.append((name, hsm_credential(Path(path))))
        elif not sys.stdin.isatty():
            raise ConfigError(f"--approver {name}: give NAME=FILE (no terminal to ask on)")
        else:
            import getpass

            pairs.append((name, getpass.getpass(f"credential for approver {name}: ").encode()))
    return pairs


def add_url_options(parser: argparse.ArgumentParser, *, what: str, token: bool = False) -> None:
    """``--url`` (``$IRONROOT_URL``) and, for writes, ``--token``."""
    parser.add_argument("--url", help=f"{what} base URL (or $IRONROOT_URL)")
    if token:
        parser.add_argument(
            "--token",
            help="bearer token for writes (or $IRONROOT_TOKEN, or a file: $IRONROOT_TOKEN_FILE)",
        )


def url(args: argparse.Namespace) -> str:
    given = getattr(args, "url", None) or _env("url")
    if not given:
        raise ConfigError("give --url or set IRONROOT_URL")
    return str(given)


def token(args: argparse.Namespace) -> str | None:
    """``--token``, else ``$IRONROOT_TOKEN`` or the file ``$IRONROOT_TOKEN_FILE`` names (spaces
    at either end dropped); ``ConfigError`` naming where it came from (never the token) when it
    cannot be sent as ``Authorization: Bearer <token>``: printable ASCII only."""
    given = getattr(args, "token", None)
    if given:
        return _bearer(str(given), "--token")
    secret = secret_env("IRONROOT_TOKEN")
    if secret is None:
        return None
    where = "IRONROOT_TOKEN" if os.environ.get("IRONROOT_TOKEN") else "IRONROOT_TOKEN_FILE"
    try:
        text = secret.decode("utf-8", "strict").strip()
    except UnicodeDecodeError:
        text = "\ufffd"  # refused below, as any other character outside printable ASCII
    return _bearer(text, where)


def _bearer(value: str, where: str) -> str:
    if value != value.strip() or not all(" " <= c <= "~" for c in value):
        raise ConfigError(
            f"{where}: a bearer token is printable ASCII without spaces at either end (it is "
            "sent as 'Authorization: Bearer <token>')"
        )
    return value
