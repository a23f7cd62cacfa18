"""The witness's data directory: ``<data>/witness.toml``, its keys and its database.

::

    <data>/witness.toml                  the configuration (below)
    <data>/witness.sqlite3               the latest cosigned checkpoint per log, and evidence
    <data>/keys/witness-ed25519.key      the cosigning keys, PKCS#8 PEM (one per algorithm)
    <data>/keys/witness-ml-dsa-44.key

``witness.toml``::

    [witness]
    name = "witness.example/w1"          # the cosigner name (a schema-less URL)
    algorithms = ["Ed25519"]             # cosignature types: "Ed25519" (0x04, cosignature/v1)
                                         #   and/or "ML-DSA-44" (0x06, subtree/v1)
    host = "127.0.0.1"
    port = 8300
    max_request_bytes = 262144

    [[witness.logs]]                     # one table per log the witness cosigns
    origin = "transparency.example"
    keys = ["transparency.example+5c3a8b1e+AaB…"]   # the log's checkpoint vkeys

    [server]                             # connection limits (ironroot.http.ServerLimits)

Parsing is strict: an unknown key, a wrong type, an invalid vkey or origin is a
:class:`ConfigError` naming it. :func:`init_witness_dir` writes a configuration and any
missing key, and never overwrites a file; :func:`add_log` appends a ``[[witness.logs]]`` table.
"""

from __future__ import annotations

import contextlib
import json
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from ironroot._fileio import (
    file_lock,
    make_dirs,
    naming_file,
    read_limited,
    to_create,
    warn_if_exposed,
    warn_if_trust_writable,
    write_atomic,
)
from ironroot.crypto import Algorithm, PrivateKey
from ironroot.errors import (
    ConfigError,
    Conflict,
    InputUnavailable,
    IronrootError,
    LimitExceeded,
)
from ironroot.http import ServerLimits
from ironroot.witness._cosignature import CosignatureVerifier, Cosigner
from ironroot.witness._protocol import MAX_REQUEST_BYTES
from ironroot.witness._witness import WitnessedLog

__all__ = [
    "CONFIG_FILE",
    "DATABASE_FILE",
    "WitnessConfig",
    "add_log",
    "init_witness_dir",
    "load_witness_config",
    "witness_key_path",
]

CONFIG_FILE: Final = "witness.toml"
_CONFIG_LOCK: Final = ".config.lock"
DATABASE_FILE: Final = "witness.sqlite3"
_ALGORITHMS: Final = {"Ed25519": Algorithm.ED25519, "ML-DSA-44": Algorithm.ML_DSA_44}
_WITNESS_KEYS: Final = {"name", "algorithms", "host", "port", "max_request_bytes", "logs"}
_MAX_FILE: Final = 1024 * 1024


def witness_key_path(data_dir: Path, algorithm: str) -> Path:
    return Path(data_dir) / "keys" / f"witness-{algorithm.lower()}.key"


@dataclass(frozen=True, slots=True)
class WitnessConfig:
    """Everything ``witness.toml`` says, resolved and checked."""

    data_dir: Path
    name: str
    algorithms: tuple[str, ...]
    logs: tuple[WitnessedLog, ...]
    host: str | None
    port: int | None
    max_request_bytes: int
    server: ServerLimits

    @property
    def database(self) -> Path:
        return self.data_dir / DATABASE_FILE

    def cosigners(self) -> list[Cosigner]:
        """The cosigning keys from ``keys/`` (a missing or foreign file is a ConfigError)."""
        out = []
        for label in self.algorithms:
            path = witness_key_path(self.data_dir, label)
            try:  # a named pipe reads as empty rather than being waited on
                pem = read_limited(path, _MAX_FILE)
            except OSError as exc:
                raise ConfigError(f"cannot read the witness key {path}: {exc.strerror}") from exc
            except InputUnavailable as exc:
                raise ConfigError(f"cannot read the witness key {exc.detail}") from exc
            except LimitExceeded as exc:
                raise ConfigError(exc.detail) from exc
            warn_if_exposed(path, "the witness's private key")
            try:
                key = PrivateKey.from_pem(pem, _ALGORITHMS[label])
            except IronrootError as exc:
                raise ConfigError(f"{path} is not a {label} private key") from exc
            out.append(Cosigner(self.name, key))
        return out


def _get(table: dict[str, Any], name: str, kind: type, default: Any, where: str) -> Any:
    value = table.get(name, default)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ConfigError(f"{where}.{name} must be a {kind.__name__}")
    return value


def _logs(value: object) -> tuple[WitnessedLog, ...]:
    if not isinstance(value, list):
        raise ConfigError("witness.logs must be an array of tables")
    logs = []
    seen: set[str] = set()
    for i, table in enumerate(value):
        where = f"witness.logs[{i}]"
        if not isinstance(table, dict) or set(table) - {"origin", "keys"}:
            raise ConfigError(f"{where} takes exactly 'origin' and 'keys'")
        origin = _get(table, "origin", str, None, where)
        keys = _get(table, "keys", list, None, where)
        if not keys or not all(isinstance(k, str) for k in keys):
            raise ConfigError(f"{where}.keys must be a non-empty list of vkey strings")
        if origin in seen:
            raise ConfigError(f"{where}: the log {origin!r} is configured twice")
        seen.add(origin)
        try:
            logs.append(WitnessedLog.from_vkeys(origin, keys))
        except IronrootError as exc:
            raise ConfigError(f"{where}: {exc.detail}") from exc
    return tuple(logs)


def load_witness_config(data_dir: Path) -> WitnessConfig:
    """Read and check ``<data_dir>/witness.toml``; every ``ConfigError`` names that file."""
    path = Path(data_dir) / CONFIG_FILE
    with naming_file(path):
        return _load(Path(data_dir), path)


def _load(data_dir: Path, path: Path) -> WitnessConfig:
    try:  # a named pipe reads as empty rather than being waited on
        raw_bytes = read_limited(path, _MAX_FILE)
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror or exc}") from exc
    except LimitExceeded as exc:
        raise ConfigError(f"{path} is too large") from exc
    except InputUnavailable as exc:
        raise ConfigError(f"cannot read {exc.detail}") from exc
    try:
        raw = tomllib.loads(raw_bytes.decode("utf-8"))
    except (ValueError, RecursionError) as exc:  # TOML, UTF-8, int() of 4,301+ digits
        raise ConfigError(f"{path} is not valid TOML: {exc}") from exc
    warn_if_trust_writable(path)
    unknown = set(raw) - {"witness", "server"}
    if unknown:
        raise ConfigError(f"unknown section [{sorted(unknown)[0]}] in {path}")
    table = raw.get("witness")
    if not isinstance(table, dict):
        raise ConfigError(f"{path} has no [witness] table")
    extra = set(table) - _WITNESS_KEYS
    if extra:
        raise ConfigError(f"unknown key witness.{sorted(extra)[0]} in {path}")
    name = _get(table, "name", str, None, "witness")
    try:
        CosignatureVerifier.check_name(name)
    except IronrootError as exc:
        raise ConfigError(f"witness.name: {exc.detail}") from exc
    algorithms = _get(table, "algorithms", list, ["Ed25519"], "witness")
    if not algorithms or any(not isinstance(a, str) or a not in _ALGORITHMS for a in algorithms):
        raise ConfigError("witness.algorithms must list one or both of Ed25519, ML-DSA-44")
    if len(set(algorithms)) != len(algorithms):
        raise ConfigError("witness.algorithms lists an algorithm twice")
    host = table.get("host")
    if host is not None and (not isinstance(host, str) or not host):
        raise ConfigError("witness.host must be a non-empty string")
    port = table.get("port")
    if port is not None and (
        isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536
    ):
        raise ConfigError("witness.port must be a TCP port (1-65535)")
    limit = _get(table, "max_request_bytes", int, MAX_REQUEST_BYTES, "witness")
    if not 1024 <= limit <= MAX_REQUEST_BYTES:
        raise ConfigError(f"witness.max_request_bytes must be in 1024..{MAX_REQUEST_BYTES}")
    return WitnessConfig(
        data_dir=Path(data_dir),
        name=name,
        algorithms=tuple(algorithms),
        logs=_logs(table.get("logs", [])),
        host=host,
        port=port,
        max_request_bytes=limit,
        server=ServerLimits.from_table(raw.get("server"), "[server]"),
    )


def _toml_string(value: str) -> str:
    """``value`` as a TOML basic string: a JSON string with its characters as they are (JSON's
    ASCII escapes spell a character past U+FFFF as two surrogates, which TOML refuses), and
    DEL, which JSON leaves as it is and TOML does not, escaped."""
    return json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007f")


def _log_table(origin: str, vkeys: Sequence[str]) -> str:
    keys = ", ".join(_toml_string(k) for k in vkeys)
    return f"\n[[witness.logs]]\norigin = {_toml_string(origin)}\nkeys = [{keys}]\n"


def init_witness_dir(
    data_dir: Path,
    *,
    name: str,
    algorithms: Sequence[str] = ("Ed25519",),
    logs: Sequence[WitnessedLog] = (),
) -> WitnessConfig:
    """Create ``data_dir`` with a configuration and keys; existing files are kept as they are.

    Each file is linked into place, never renamed over another (:func:`_create`): of two inits
    at once, the configuration and each key that lands first is the witness's, and the other
    init uses it (and prints that key), rather than replacing a key the first one printed for
    logs to trust, or a witness already cosigns with."""
    data_dir = Path(data_dir)
    make_dirs(data_dir)
    path = data_dir / CONFIG_FILE
    if to_create(path):
        text = (
            "# Ironroot witness (c2sp.org/tlog-witness); see docs/witness.md.\n"
            "[witness]\n"
            f"name = {_toml_string(name)}\n"
            f"algorithms = [{', '.join(_toml_string(a) for a in algorithms)}]\n"
        )
        text += "".join(_log_table(log.origin, [v.vkey for v in log.verifiers]) for log in logs)
        _create(path, text.encode("utf-8"), mode=0o644)
    config = load_witness_config(data_dir)
    for label in config.algorithms:
        key_path = witness_key_path(data_dir, label)
        if to_create(key_path):
            make_dirs(key_path.parent, mode=0o700)
            _create(key_path, PrivateKey.generate(_ALGORITHMS[label]).to_pem(), mode=0o600)
    return config


def _create(path: Path, data: bytes, *, mode: int) -> None:
    """``data`` written to ``path`` unless a file got there first (another init's): that one
    is kept, whole, as :func:`write_atomic` links it into place."""
    with contextlib.suppress(Conflict):
        write_atomic(path, data, mode=mode, exclusive=True)


def add_log(data_dir: Path, log: WitnessedLog) -> WitnessConfig:
    """Append a ``[[witness.logs]]`` table for ``log`` (refused if its origin is there).

    The configuration is read, extended and written while this process holds
    ``<data>/.config.lock`` (waiting for another ``add_log`` to finish): two at once each
    keep the other's table."""
    with _config_locked(Path(data_dir)):
        config = load_witness_config(data_dir)
        if any(existing.origin == log.origin for existing in config.logs):
            raise ConfigError(f"the log {log.origin!r} is already configured")
        path = Path(data_dir) / CONFIG_FILE
        text = path.read_text(encoding="utf-8")
        if not text.endswith("\n"):
            text += "\n"
        text += _log_table(log.origin, [v.vkey for v in log.verifiers])
        try:
            tomllib.loads(text)
        except (ValueError, RecursionError) as exc:  # TOML, UTF-8, int() of 4,301+ digits
            raise ConfigError(f"cannot append a [[witness.logs]] table to {path}: {exc}") from exc
        write_atomic(path, text.encode("utf-8"), mode=0o644)
        return load_witness_config(data_dir)


def _config_locked(data_dir: Path) -> contextlib.AbstractContextManager[bool]:
    """The configuration's writers, one at a time (waiting for the lock)."""
    return file_lock(data_dir / _CONFIG_LOCK, "the configuration lock")
