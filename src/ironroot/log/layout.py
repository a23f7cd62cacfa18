"""Where the log keeps its files in a data directory: the one place that says so.

::

    <data>/log.sqlite3            the log store (SQLite, WAL: also -wal and -shm files), unless
                                  ``[log] store = "postgresql"`` puts it in PostgreSQL
    <data>/keys/checkpoint.key    the checkpoint signing key: PKCS#8 PEM, Ed25519 or ML-DSA-44
    <data>/keys/checkpoint.pub.pem its public key: all `log verify DIR` reads (never the private
                                  key), written by the service whenever it starts
    <data>/keys/receipt-keys.cbor  every receipt public key the service has signed with (a COSE
                                  Key Set, kept across key rotations): `log verify DIR` checks
                                  each batch's stored receipt signatures with it
    <data>/ironroot.toml          service configuration; the log reads its origin from it

The origin is ``[log] origin`` in ``ironroot.toml``. Without it, it is the host part of the
service issuer, taken from (the first present of) top-level ``service_issuer``,
``[transparency] service_issuer``, ``[service] issuer`` — for ``https://transparency.example``
that is ``transparency.example``. The checkpoint key's note name is the origin
(c2sp.org/tlog-checkpoint: the log's key name SHOULD match the origin line).

The transparency service writes these files; ``ironroot log verify DIR`` reads them.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from ironroot._fileio import read_limited
from ironroot.crypto import PrivateKey, PublicKey
from ironroot.errors import ConfigError, InputUnavailable, LimitExceeded, MalformedInput
from ironroot.log._checkpoint import Checkpoint
from ironroot.log._note import NoteSigner, NoteVerifier

__all__ = [
    "CHECKPOINT_KEY",
    "CHECKPOINT_PUBLIC_KEY",
    "CONFIG_FILE",
    "LOG_DB",
    "RECEIPT_KEYS",
    "LogIdentity",
    "checkpoint_key_path",
    "checkpoint_public_key_path",
    "config_path",
    "load_checkpoint_signer",
    "load_log_identity",
    "log_db_path",
    "read_log_origin",
    "read_log_table",
    "receipt_keys_path",
]

LOG_DB = "log.sqlite3"
CHECKPOINT_KEY = "keys/checkpoint.key"
CHECKPOINT_PUBLIC_KEY = "keys/checkpoint.pub.pem"
CONFIG_FILE = "ironroot.toml"
RECEIPT_KEYS = "keys/receipt-keys.cbor"
_MAX_FILE = 1 << 20


def log_db_path(data_dir: Path) -> Path:
    return Path(data_dir) / LOG_DB


def checkpoint_key_path(data_dir: Path) -> Path:
    return Path(data_dir) / CHECKPOINT_KEY


def checkpoint_public_key_path(data_dir: Path) -> Path:
    """The checkpoint key's public half (written by the service; used when an HSM holds the
    private key)."""
    return Path(data_dir) / CHECKPOINT_PUBLIC_KEY


def receipt_keys_path(data_dir: Path) -> Path:
    """The COSE Key Set of every receipt public key the service has used."""
    return Path(data_dir) / RECEIPT_KEYS


def config_path(data_dir: Path) -> Path:
    return Path(data_dir) / CONFIG_FILE


def _read(path: Path, what: str) -> bytes:
    """The file, within its limit; a named pipe reads as empty rather than being waited on."""
    try:
        return read_limited(path, _MAX_FILE)
    except FileNotFoundError as exc:
        raise ConfigError(f"no {what} at {path}") from exc
    except LimitExceeded as exc:
        raise ConfigError(f"the {what} at {path} is too large") from exc
    except (OSError, InputUnavailable) as exc:
        raise ConfigError(f"cannot read the {what} at {path}") from exc


def _host(issuer: str) -> str:
    parts = urlsplit(issuer if "://" in issuer else f"https://{issuer}")
    if not parts.hostname:
        raise ConfigError(f"cannot take a host from the service issuer {issuer!r}")
    return parts.hostname


def _read_config(data_dir: Path) -> dict[str, object]:
    raw = _read(config_path(data_dir), "configuration file")
    try:
        return tomllib.loads(raw.decode("utf-8"))
    except (ValueError, RecursionError) as exc:  # TOML, UTF-8, int() of 4,301+ digits
        raise ConfigError(f"{config_path(data_dir)} is not valid TOML: {exc}") from exc


def read_log_table(data_dir: Path) -> dict[str, object]:
    """The ``[log]`` table of ``<data_dir>/ironroot.toml`` (empty when it has none)."""
    table = _read_config(data_dir).get("log", {})
    if not isinstance(table, dict):
        raise ConfigError(f"[log] in {config_path(data_dir)} must be a table")
    return table


def read_log_origin(data_dir: Path) -> str:
    """The log origin configured for ``data_dir`` (see the module docstring)."""
    config = _read_config(data_dir)
    origin: object = None
    log_table = config.get("log")
    if isinstance(log_table, dict):
        origin = log_table.get("origin")
    if origin is None:
        candidates: list[object] = [config.get("service_issuer")]
        for table, key in (("transparency", "service_issuer"), ("service", "issuer")):
            section = config.get(table)
            if isinstance(section, dict):
                candidates.append(section.get(key))
        issuer = next((c for c in candidates if c is not None), None)
        if issuer is None:
            raise ConfigError("no [log] origin and no service issuer in the configuration")
        if not isinstance(issuer, str):
            raise ConfigError("the service issuer must be a string")
        origin = _host(issuer)
    if not isinstance(origin, str):
        raise ConfigError("[log] origin must be a string")
    try:
        Checkpoint(origin, 0, bytes(32))
    except MalformedInput as exc:
        raise ConfigError(f"invalid log origin {origin!r}") from exc
    return origin


def load_checkpoint_signer(data_dir: Path, origin: str) -> NoteSigner:
    """The checkpoint signer from ``keys/checkpoint.key`` (PKCS#8 PEM), named ``origin``."""
    pem = _read(checkpoint_key_path(data_dir), "checkpoint key")
    try:
        key = PrivateKey.from_pem(pem)
        return NoteSigner(origin, key)
    except MalformedInput as exc:
        raise ConfigError(f"{checkpoint_key_path(data_dir)}: {exc.detail}") from exc


@dataclass(frozen=True, slots=True)
class LogIdentity:
    """A log's origin and the verifiers of its checkpoints."""

    origin: str
    verifiers: tuple[NoteVerifier, ...]


def load_log_identity(data_dir: Path, *, origin: str | None = None) -> LogIdentity:
    """Origin (from configuration unless given) and the checkpoint verifier for ``data_dir``.

    Only public material is read: ``keys/checkpoint.pub.pem`` (the service writes it whenever it
    starts). The private ``keys/checkpoint.key`` is never opened here, so a damaged or replaced
    public key file cannot hide behind an intact private key. A missing or unreadable public
    key raises :class:`ConfigError` naming the file.
    """
    name = origin if origin is not None else read_log_origin(data_dir)
    path = checkpoint_public_key_path(data_dir)
    if not path.exists():
        raise ConfigError(
            f"no checkpoint public key at {path}: the transparency service writes it when it "
            "starts; or give the checkpoint key (--key)"
        )
    pem = _read(path, "checkpoint public key")
    try:
        verifier = NoteVerifier(name, PublicKey.from_pem(pem))
    except MalformedInput as exc:
        raise ConfigError(f"{path} is damaged: {exc.detail}") from exc
    return LogIdentity(origin=name, verifiers=(verifier,))
