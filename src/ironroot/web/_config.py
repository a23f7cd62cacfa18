"""The dashboard's data directory: what it shows (its sources) and its own small state.

::

    <data>/dashboard.toml        optional: title, sources, session and login settings
    <data>/dashboard/operators.json   the operators who may log in (scrypt hashes; mode 0600)
    <data>/dashboard/session.key      32 random bytes that sign session cookies (mode 0600)

``dashboard.toml`` (every key optional; relative paths are relative to the data directory)::

    title = "Ironroot"
    allowed_hosts = ["dash.example"]   # Host names it answers besides its own address
    [sources]
    logs = ["ts"]              # transparency service data directories (ironroot serve --data)
    fleet = "fleet"            # a fleet directory (ironroot fleet init)
    hsm = ["hsm"]              # HSM directories (ironroot hsm init --dir)
    keyrelease = ["keys"]      # key release data directories (keyrelease.toml)
    monitor = ["monitor.db"]   # monitor databases (ironroot monitor --state)
    witness = ["witness"]      # witness data directories (ironroot witness init)
    [session]
    lifetime = 28800           # seconds a login lasts (300 .. 604800)
    [login]
    max_failures = 5           # failed logins per client address ...
    window = 300               # ... within this many seconds, then 429 until the window passes
                               # (an account name: 4 * max_failures, from any addresses)
    [metrics]
    token_file = "metrics.token"   # a bearer token (32+ characters) for scrapers of /metrics
    [server]
    trusted_proxies = ["127.0.0.1"]  # a reverse proxy (ending TLS) whose X-Forwarded-Proto
                                     # and X-Forwarded-For are believed; and every limit of
                                     # ironroot.http.ServerLimits

``/metrics`` answers a signed-in operator, and a client presenting ``Authorization: Bearer``
with the token in ``[metrics] token_file`` (for a Prometheus scraper, which cannot log in);
anyone else gets a 401 problem. Without a ``token_file``, only operators may read it.

Without ``[sources]`` the sources are found in the data directory: the directory itself and
each of its immediate subdirectories is a transparency log when it holds ``log.sqlite3`` and
``ironroot.toml``, a fleet when it holds ``fleet.json``, an HSM when it holds ``audit.jsonl``,
a key release directory when it holds ``keyrelease.toml`` (whose HSM is then added too), a
witness when it holds ``witness.toml``; a ``monitor.db`` file in the data directory or in the
fleet is a monitor database. Reading the sources never writes them.
"""

from __future__ import annotations

import hashlib
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Final

from ironroot._fileio import read_limited, warn_if_exposed, warn_if_trust_writable
from ironroot.errors import ConfigError, InputUnavailable, IronrootError
from ironroot.http import ServerLimits

__all__ = ["CONFIG_FILE", "STATE_DIR", "DashboardConfig", "load_dashboard_config"]

CONFIG_FILE: Final = "dashboard.toml"
STATE_DIR: Final = "dashboard"
_MAX_CONFIG: Final = 256 * 1024
_TOP: Final = frozenset(
    {"title", "allowed_hosts", "sources", "session", "login", "metrics", "server"}
)
_SOURCES: Final = frozenset({"logs", "fleet", "hsm", "keyrelease", "monitor", "witness"})
_LIFETIME: Final = (300, 7 * 86400)
_FAILURES: Final = (1, 1000)
_WINDOW: Final = (10, 86400)
_MIN_TOKEN: Final = 32  # characters of a metrics bearer token
_MAX_TOKEN_FILE: Final = 4096


@dataclass(frozen=True, slots=True)
class DashboardConfig:
    """Everything the dashboard reads, resolved: where its sources are, and its settings."""

    data_dir: Path
    title: str = "Ironroot"
    logs: tuple[Path, ...] = ()
    fleet: Path | None = None
    hsms: tuple[Path, ...] = ()
    keyrelease: tuple[Path, ...] = ()
    monitors: tuple[Path, ...] = ()
    witnesses: tuple[Path, ...] = ()
    session_lifetime: int = 8 * 3600
    max_failures: int = 5
    failure_window: int = 300
    allowed_hosts: tuple[str, ...] = ()
    """``Host`` names the served dashboard answers besides its own address
    (:func:`ironroot.web.dashboard_hosts`): a reverse proxy's, e.g. ``dash.example``."""
    metrics_token_sha256: bytes | None = field(default=None, repr=False)
    """SHA-256 of the bearer token that may read ``/metrics`` (``None``: operators only)."""
    server: ServerLimits = field(default_factory=ServerLimits)
    """``[server]``: limits, and the reverse proxies whose ``X-Forwarded-Proto`` and
    ``X-Forwarded-For`` are believed (``trusted_proxies``), as for every Ironroot server."""

    @property
    def state_dir(self) -> Path:
        """The dashboard's own files (operators, session key)."""
        return self.data_dir / STATE_DIR

    @property
    def has_sources(self) -> bool:
        return bool(
            self.logs
            or self.fleet
            or self.hsms
            or self.keyrelease
            or self.monitors
            or self.witnesses
        )

    def with_fleet(self, fleet: Path) -> DashboardConfig:
        """This configuration showing ``fleet`` when it names no fleet of its own."""
        if self.fleet is not None:
            return self
        monitors = self.monitors
        if (fleet / "monitor.db").is_file() and fleet / "monitor.db" not in monitors:
            monitors = (*monitors, fleet / "monitor.db")
        return replace(self, fleet=fleet, monitors=monitors)


def _int(
    table: Mapping[str, Any], key: str, default: int, bounds: tuple[int, int], where: str
) -> int:
    value = table.get(key, default)
    low, high = bounds
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ConfigError(f"{where}.{key} is an integer from {low} to {high}")
    return value


def _paths(base: Path, value: object, key: str) -> tuple[Path, ...]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(v, str) and v for v in items):
        raise ConfigError(f"sources.{key} is a path or a list of paths")
    return tuple(base / v for v in items)


def host_names(values: object, where: str) -> tuple[str, ...]:
    """``values`` as ``Host`` names (``name`` or ``name:port``, an IPv6 literal bracketed);
    ``ConfigError`` for anything else (a URL, a wildcard, a blank)."""
    if not isinstance(values, list | tuple):
        raise ConfigError(f"{where} is a list of host names")
    names = []
    for value in values:
        name, _, port = value.rpartition(":") if isinstance(value, str) else ("", "", "")
        if not (
            isinstance(value, str)
            and 0 < len(value) <= 260
            and value.isascii()
            and all(c.isalnum() or c in ".-:[]" for c in value)
            and (not port.isdigit() or (name and not name.endswith(":")))
        ):
            raise ConfigError(f"{where}: {value!r} is not a host name (name or name:port)")
        names.append(value.lower())
    return tuple(names)


def _is_log(path: Path) -> bool:
    return (path / "log.sqlite3").is_file() and (path / "ironroot.toml").is_file()


def _discover(base: Path) -> dict[str, Any]:
    """The sources found in ``base`` and its immediate subdirectories (module docs)."""
    found: dict[str, list[Path]] = {k: [] for k in _SOURCES}
    candidates = [base, *sorted(p for p in base.iterdir() if p.is_dir() and p.name != STATE_DIR)]
    for path in candidates:
        if _is_log(path):
            found["logs"].append(path)
        if (path / "fleet.json").is_file():
            found["fleet"].append(path)
        if (path / "audit.jsonl").is_file():
            found["hsm"].append(path)
        if (path / "keyrelease.toml").is_file():
            found["keyrelease"].append(path)
        if (path / "witness.toml").is_file():
            found["witness"].append(path)
    if (base / "monitor.db").is_file():
        found["monitor"].append(base / "monitor.db")
    return found


def _metrics_token(base: Path, table: object) -> bytes | None:
    """SHA-256 of the token in ``[metrics] token_file`` (the token itself is kept nowhere)."""
    if not isinstance(table, dict) or set(table) - {"token_file"}:
        raise ConfigError("[metrics] takes token_file")
    value = table.get("token_file")
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise ConfigError("[metrics] token_file is a path")
    path = base / value
    try:
        raw = read_limited(path, _MAX_TOKEN_FILE)
    except OSError as exc:
        raise ConfigError(f"{path}: the metrics token cannot be read: {exc.strerror}") from exc
    except IronrootError as exc:
        raise ConfigError(f"{path}: {exc.detail}") from exc
    try:
        token = raw.decode("ascii").strip()
    except UnicodeDecodeError:
        token = ""
    if len(token) < _MIN_TOKEN or not token.isprintable() or " " in token:
        raise ConfigError(
            f"{path}: a metrics token is {_MIN_TOKEN} or more printable ASCII characters"
        )
    warn_if_exposed(path, "the dashboard's metrics token")
    return hashlib.sha256(token.encode("ascii")).digest()


def _keyrelease_hsm(directory: Path) -> Path | None:
    """The HSM directory a key release directory names (``None`` when it cannot be read)."""
    from ironroot.keyrelease import load_keyrelease_config

    try:
        return load_keyrelease_config(directory).hsm_dir
    except IronrootError:
        return None


def load_dashboard_config(data_dir: Path | str) -> DashboardConfig:
    """The configuration of the dashboard in ``data_dir`` (module docs). ``InputUnavailable``
    when it is not a directory, ``ConfigError`` when ``dashboard.toml`` is wrong."""
    base = Path(data_dir)
    if not base.is_dir():
        raise InputUnavailable(f"{base} is not a directory (the dashboard's data directory)")
    doc: dict[str, Any] = {}
    path = base / CONFIG_FILE
    if path.exists() or path.is_symlink():  # a link to nowhere is refused, not no file
        try:
            doc = tomllib.loads(read_limited(path, _MAX_CONFIG).decode("utf-8"))
        except (OSError, ValueError, RecursionError) as exc:  # TOML, UTF-8, int() of 4,301+ digits
            raise ConfigError(f"{path} is not readable TOML: {exc}") from exc
        except IronrootError as exc:
            raise ConfigError(f"{path}: {exc.detail}") from exc
        warn_if_trust_writable(path)
    unknown = set(doc) - _TOP
    if unknown:
        raise ConfigError(f"{path}: unknown setting(s) {', '.join(sorted(unknown))}")
    title = doc.get("title", "Ironroot")
    if not isinstance(title, str) or not title or len(title) > 80:
        raise ConfigError("title is 1 to 80 characters of text")
    session = doc.get("session", {})
    login = doc.get("login", {})
    for name, table, keys in (
        ("session", session, {"lifetime"}),
        ("login", login, {"max_failures", "window"}),
    ):
        if not isinstance(table, dict) or set(table) - keys:
            raise ConfigError(f"[{name}] takes {', '.join(sorted(keys))}")
    sources = doc.get("sources")
    if sources is None:
        given = _discover(base)
    else:
        if not isinstance(sources, dict) or set(sources) - _SOURCES:
            raise ConfigError(f"[sources] takes {', '.join(sorted(_SOURCES))}")
        given = {k: list(_paths(base, v, k)) for k, v in sources.items()}
    fleets = list(given.get("fleet", []))
    if len(fleets) > 1:
        raise ConfigError("the dashboard shows one fleet: sources.fleet names one directory")
    fleet = fleets[0] if fleets else None
    keyrelease = tuple(given.get("keyrelease", []))
    hsms = list(given.get("hsm", []))
    for directory in keyrelease:
        hsm = _keyrelease_hsm(directory)
        if hsm is not None and hsm.is_dir() and hsm not in hsms:
            hsms.append(hsm)
    monitors = list(given.get("monitor", []))
    if (
        fleet is not None
        and (fleet / "monitor.db").is_file()
        and fleet / "monitor.db" not in monitors
    ):
        monitors.append(fleet / "monitor.db")
    return DashboardConfig(
        data_dir=base,
        title=title,
        logs=tuple(given.get("logs", [])),
        fleet=fleet,
        hsms=tuple(hsms),
        keyrelease=keyrelease,
        monitors=tuple(monitors),
        witnesses=tuple(given.get("witness", [])),
        allowed_hosts=host_names(doc.get("allowed_hosts", []), "allowed_hosts"),
        session_lifetime=_int(session, "lifetime", 8 * 3600, _LIFETIME, "session"),
        max_failures=_int(login, "max_failures", 5, _FAILURES, "login"),
        failure_window=_int(login, "window", 300, _WINDOW, "login"),
        metrics_token_sha256=_metrics_token(base, doc.get("metrics", {})),
        server=ServerLimits.from_table(doc.get("server"), "[server]"),
    )
