"""The key service's data directory: ``<data>/keyrelease.toml`` and the running server.

::

    [keyrelease]
    host = "127.0.0.1"
    port = 8200
    nonce_lifetime = 300                     # seconds a release challenge is valid
    admin = "loopback"                       # who reaches /admin: off, loopback or any
    keep_statements = 10000                  # release statements kept in <data>/releases.db

    [keyrelease.hsm]                         # where the keys live
    dir = "hsm"                              # the HSM directory (ironroot hsm init --dir)
    rot_device = "rot"                       # the RoT device keeping the HSM's counter
    counter = "hsm"                          # that counter's name (default "hsm")
    sealing_secret_file = "hsm.sealing-secret"
    identity = "keyrelease"                  # a crypto-user identity of that HSM
    credential_file = "keyrelease.credential"
    audit_segment_records = 100000           # audit records per archived segment (2-250000;
                                             #   sealed in the HSM: omitted, the HSM's own)
    refusal_commit_rate = 20                 # commits a second that carry only refusals, for
    refusal_commit_burst = 64                #   all clients together, after this burst

    [keyrelease.keys.db-key]                 # one table per releasable key, by name
    handle = "…"                             # its HSM handle (ironroot hsm key generate …
                                             #   --exportable --release-policy-file P)

Relative paths are relative to the data directory. Besides ``[keyrelease]`` (with
``[keyrelease.hsm]`` and ``[keyrelease.keys.*]``) the file takes ``[server]`` and
``[challenges]``; any other section or setting, or a setting of the wrong type, is a
``ConfigError`` naming it (a misspelt ``nonce_lifetime`` is not silently the default).
What decides a release is held by the HSM, not by this file: the EAR verifier keys a crypto
officer installed (``ironroot hsm verifier add``), each key's release policy and whether a
``warning`` EAR releases it (``ironroot hsm key generate --release-policy-file P
[--release-on-warning]``). A ``verifiers`` list or a
key's ``minimum_status`` here is refused with a ``ConfigError`` that says so. At start,
:meth:`KeyReleaseConfig.open` logs a warning when the HSM has no verifier installed (every
release is then refused) and for each key without a release policy (never released).
Every release statement the service hands out is kept in ``<data>/releases.db`` (the newest
``keep_statements``), for the audit bundle (``ironroot.keyrelease._statements``).
"""

from __future__ import annotations

import contextlib
import logging
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from ironroot._fileio import (
    DirectoryLock,
    naming_file,
    read_config,
    warn_if_exposed,
    warn_if_trust_writable,
)
from ironroot.ear import ChallengeLimits
from ironroot.errors import ConfigError, HsmErrorState
from ironroot.hsm import DirectoryStorage, Hsm, HsmConfig
from ironroot.http import (
    ServerLimits,
    ServerTls,
    check_listen,
    configure_logging,
    run_server,
    server_config,
)
from ironroot.keyrelease._admin import ADMIN_REACH
from ironroot.keyrelease._http import create_keyrelease_app
from ironroot.keyrelease._service import (
    HsmVault,
    KeyReleaseService,
    ReleasableKey,
    ReleaseGate,
)
from ironroot.keyrelease._statements import DEFAULT_KEEP, MAX_KEEP, RELEASES_DB, ReleaseStatements

__all__ = ["CONFIG_FILE", "KeyReleaseConfig", "load_keyrelease_config", "serve_keyrelease"]

CONFIG_FILE: Final = "keyrelease.toml"
_MAX_FILE: Final = 1024 * 1024
_MAX_SECRET: Final = 64 * 1024
_log = logging.getLogger("ironroot.keyrelease")
_SECTIONS: Final = frozenset(("keyrelease", "server", "challenges"))
_SETTINGS: Final = frozenset(
    ("host", "port", "nonce_lifetime", "admin", "hsm", "keys", "keep_statements")
)
_HSM_SETTINGS: Final = frozenset(
    (
        "dir",
        "rot_device",
        "counter",
        "sealing_secret_file",
        "identity",
        "credential_file",
        "audit_segment_records",
        "refusal_commit_rate",
        "refusal_commit_burst",
    )
)


def _text(table: Mapping[str, Any], key: str, where: str) -> str:
    value = table.get(key)
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{where}.{key} must be non-empty text")
    return value


@dataclass(frozen=True, slots=True)
class KeyReleaseConfig:
    """A parsed ``keyrelease.toml`` (paths resolved against the data directory)."""

    data_dir: Path
    host: str
    port: int
    nonce_lifetime: int
    hsm_dir: Path
    rot_device: Path
    sealing_secret_file: Path
    identity: str
    credential_file: Path
    keys: tuple[ReleasableKey, ...]
    counter: str = "hsm"
    admin: str = "loopback"
    server: ServerLimits = field(default_factory=ServerLimits)
    challenges: ChallengeLimits = field(default_factory=ChallengeLimits)
    keep_statements: int = DEFAULT_KEEP
    audit_segment_records: int | None = None
    """``[keyrelease.hsm] audit_segment_records``: how many records the HSM's live audit log
    holds before it is archived as a segment (:class:`~ironroot.hsm.HsmConfig`: sealed in the
    HSM's store at power-up, so the CLI rotates at it too); ``None``: the HSM's own."""
    refusal_commit_rate: float = HsmConfig().refusal_commit_rate
    refusal_commit_burst: int = HsmConfig().refusal_commit_burst
    """``[keyrelease.hsm] refusal_commit_rate`` and ``refusal_commit_burst``: the HSM's
    budget of commits that carry only refusals (:class:`~ironroot.hsm.HsmConfig`)."""

    @contextlib.contextmanager
    def open(self, gate: ReleaseGate | None = None) -> Iterator[KeyReleaseService]:
        """Open the HSM, log in, and yield the service (every release first through ``gate``,
        when given); close the HSM afterwards."""
        storage = DirectoryStorage.on_device(self.hsm_dir, self.rot_device, counter=self.counter)
        try:
            warn_if_exposed(self.sealing_secret_file, "the HSM sealing secret")
            hsm = Hsm.open(
                storage,
                read_config(self.sealing_secret_file, _MAX_SECRET),
                config=HsmConfig(
                    release_nonce_lifetime=self.nonce_lifetime,
                    release_challenges=self.challenges,
                    audit_segment_records=self.audit_segment_records,
                    refusal_commit_rate=self.refusal_commit_rate,
                    refusal_commit_burst=self.refusal_commit_burst,
                ),
            )
            try:
                if hsm.state != "operational":
                    raise HsmErrorState(f"the HSM is in its error state: {hsm.error}")
                warn_if_exposed(self.credential_file, "the HSM credential")
                credential = read_config(self.credential_file, _MAX_SECRET).rstrip(b"\r\n")
                vault = HsmVault(hsm, hsm.login(self.identity, credential))
                if not vault.verifiers():
                    _log.warning(
                        "no EAR verifier is installed in the HSM: every release is refused "
                        "(ironroot hsm verifier add)"
                    )
                for key in self.keys:
                    if vault.policy(key.handle) is None:
                        _log.warning("key %s has no release policy: it is never released", key.name)
                kept = ReleaseStatements(self.data_dir / RELEASES_DB, limit=self.keep_statements)
                try:
                    yield KeyReleaseService(keys=self.keys, vault=vault, gate=gate, statements=kept)
                finally:
                    kept.close()
            finally:
                hsm.close()
        finally:
            storage.close()


def _keys(value: object) -> tuple[ReleasableKey, ...]:
    if value is None:
        return ()
    if not isinstance(value, Mapping):
        raise ConfigError("keyrelease.keys must be a table of key tables")
    out = []
    for name, table in value.items():
        where = f"keyrelease.keys.{name}"
        if not isinstance(table, Mapping):
            raise ConfigError(f"{where} must be a table")
        if "minimum_status" in table:
            raise ConfigError(
                f"{where}.minimum_status: which EAR statuses release a key is held by the HSM "
                "with the key (ironroot hsm key generate --release-on-warning)"
            )
        unknown = set(table) - {"handle"}
        if unknown:
            raise ConfigError(f"{where}: unknown settings {', '.join(sorted(unknown))}")
        out.append(ReleasableKey(str(name), _text(table, "handle", where)))
    return tuple(out)


def _known(table: Mapping[str, Any], known: frozenset[str], where: str) -> None:
    unknown = set(table) - known
    if unknown:
        raise ConfigError(f"{where}: unknown settings {', '.join(sorted(unknown))}")


def load_keyrelease_config(data_dir: Path | str) -> KeyReleaseConfig:
    """Read and check ``<data_dir>/keyrelease.toml`` (``ConfigError`` when it is wrong: a
    missing or mistyped setting, an unknown section or setting; it names the file)."""
    path = Path(data_dir) / CONFIG_FILE
    with naming_file(path):
        return _load(Path(data_dir))


def _load(base: Path) -> KeyReleaseConfig:
    try:
        document = tomllib.loads(read_config(base / CONFIG_FILE, _MAX_FILE).decode("utf-8"))
    except (ValueError, RecursionError) as exc:  # TOML, UTF-8, int() of 4,301+ digits
        raise ConfigError(f"{base / CONFIG_FILE} is not TOML: {exc}") from exc
    warn_if_trust_writable(base / CONFIG_FILE)
    sections = set(document) - _SECTIONS
    if sections:
        raise ConfigError(f"{CONFIG_FILE}: unknown section [{sorted(sections)[0]}]")
    table = document.get("keyrelease")
    if not isinstance(table, Mapping):
        raise ConfigError(f"{CONFIG_FILE} needs a [keyrelease] table")
    if "verifiers" in table:
        raise ConfigError(
            "keyrelease.verifiers: the EAR verifiers a release trusts are installed in the HSM "
            "by a crypto officer (ironroot hsm verifier add NAME KEY); remove them from "
            f"{CONFIG_FILE}"
        )
    _known(table, _SETTINGS, "[keyrelease]")
    hsm = table.get("hsm")
    if not isinstance(hsm, Mapping):
        raise ConfigError(f"{CONFIG_FILE} needs a [keyrelease.hsm] table")
    _known(hsm, _HSM_SETTINGS, "[keyrelease.hsm]")
    host = table.get("host", "127.0.0.1")
    port = table.get("port", 8200)
    lifetime = table.get("nonce_lifetime", 300)
    if not isinstance(host, str) or not host:
        raise ConfigError("keyrelease.host must be text")
    if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
        raise ConfigError("keyrelease.port must be a TCP port")
    if isinstance(lifetime, bool) or not isinstance(lifetime, int) or lifetime < 1:
        raise ConfigError("keyrelease.nonce_lifetime must be a positive number of seconds")
    keep = table.get("keep_statements", DEFAULT_KEEP)
    if isinstance(keep, bool) or not isinstance(keep, int) or not 1 <= keep <= MAX_KEEP:
        raise ConfigError(f"keyrelease.keep_statements is a number from 1 to {MAX_KEEP}")
    segment = hsm.get("audit_segment_records")
    defaults = HsmConfig()
    rate = hsm.get("refusal_commit_rate", defaults.refusal_commit_rate)
    burst = hsm.get("refusal_commit_burst", defaults.refusal_commit_burst)
    try:  # HsmConfig checks the range; the error names the setting as the file spells it
        HsmConfig(
            audit_segment_records=segment,
            refusal_commit_rate=rate,
            refusal_commit_burst=burst,
        )
    except ConfigError as exc:
        raise ConfigError(f"keyrelease.hsm.{exc.detail}") from exc
    admin = table.get("admin", "loopback")
    if admin not in ADMIN_REACH:
        raise ConfigError(f"keyrelease.admin is one of {', '.join(ADMIN_REACH)}")
    return KeyReleaseConfig(
        data_dir=base,
        host=host,
        port=port,
        nonce_lifetime=lifetime,
        admin=admin,
        hsm_dir=base / _text(hsm, "dir", "keyrelease.hsm"),
        rot_device=base / _text(hsm, "rot_device", "keyrelease.hsm"),
        counter=_text(hsm, "counter", "keyrelease.hsm") if "counter" in hsm else "hsm",
        sealing_secret_file=base / _text(hsm, "sealing_secret_file", "keyrelease.hsm"),
        identity=_text(hsm, "identity", "keyrelease.hsm"),
        credential_file=base / _text(hsm, "credential_file", "keyrelease.hsm"),
        keys=_keys(table.get("keys")),
        server=ServerLimits.from_table(document.get("server"), "[server]"),
        challenges=ChallengeLimits.from_table(document.get("challenges")),
        keep_statements=keep,
        audit_segment_records=segment,
        refusal_commit_rate=rate,
        refusal_commit_burst=burst,
    )


def serve_keyrelease(
    data_dir: Path | str,
    host: str | None = None,
    port: int | None = None,
    *,
    tls: ServerTls | None = None,
    gate: ReleaseGate | None = None,
) -> None:
    """Serve the key service of ``data_dir`` until SIGINT/SIGTERM (HTTPS with ``tls``; every
    release first through ``gate``, when given: a fleet's
    :class:`~ironroot.fleet.FleetReleaseGate`); the HSM is closed after. One process per data
    directory (``InUse``); the port is checked before the HSM is opened."""
    config = load_keyrelease_config(data_dir)
    host = host or config.host
    port = config.port if port is None else port
    check_listen(host, port)
    if not logging.getLogger("ironroot").handlers:
        configure_logging("info", "text")
    lock = DirectoryLock(config.data_dir, ".serve.lock", what="key service data directory")
    try:
        with config.open(gate) as service:
            vault = service.vault
            _log.info(
                "key release service on %s://%s:%d: data %s, HSM %s (%s), keys %s, EAR "
                "verifiers %s, gate %s",
                "https" if tls is not None else "http",
                host,
                port,
                config.data_dir,
                config.hsm_dir,
                vault.hsm.hsm_id.hex()[:16] if isinstance(vault, HsmVault) else "-",
                ", ".join(f"{n} ({service.keys[n].handle[:16]})" for n in sorted(service.keys))
                or "none",
                ", ".join(n for n, _kid in vault.verifiers())
                if isinstance(vault, HsmVault)
                else "-",
                gate if gate is not None else "none",
            )
            run_server(
                server_config(
                    create_keyrelease_app(service, admin=config.admin),
                    host,
                    port,
                    config.server,
                    tls=tls,
                )
            )
    finally:
        lock.close()
