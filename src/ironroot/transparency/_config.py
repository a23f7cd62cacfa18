"""The transparency service's configuration: ``<data>/ironroot.toml`` and the data directory.

The TOML names below are a contract that operators' tooling relies on; ``docs/transparency.md``
documents each one. Relative paths are relative to the data directory. Parsing is strict: an
unknown key, a wrong type or a missing file is a :class:`ConfigError` naming it. A trust anchor
file that exists but does not load (an ``x509_roots`` certificate, an issuer's key) is left out,
logged as a warning naming the file and the error, and listed in
``TransparencyConfig.rejected``: one bad file never stops the service (and what it would have
trusted is not trusted).
"""

from __future__ import annotations

import enum
import hashlib
import json
import logging
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from ironroot._fileio import (
    DirectoryLock,
    load_each,
    make_dirs,
    naming_file,
    read_limited,
    to_create,
    warn_if_exposed,
    warn_if_trust_writable,
    write_atomic,
)
from ironroot.crypto import Algorithm, PrivateKey, PublicKey, load_certificates
from ironroot.errors import (
    ConfigError,
    InputUnavailable,
    InUse,
    IronrootError,
    LimitExceeded,
    MalformedInput,
)
from ironroot.http import ServerLimits
from ironroot.log import STORE_KEYS, StoreConfig
from ironroot.log.layout import CONFIG_FILE, checkpoint_key_path
from ironroot.transparency._cts import check_cts_prefix
from ironroot.witness import CosignatureVerifier, WitnessPolicy

__all__ = [
    "CONFIG_FILE",
    "DEFAULT_ACCEPTED",
    "IssuerKey",
    "TransparencyConfig",
    "WitnessEndpoint",
    "config_fingerprint",
    "init_data_dir",
    "load_config",
    "lock_data_dir",
    "receipt_key_path",
    "write_missing",
]

KEYS_DIR: Final = "keys"
DEFAULT_ACCEPTED: Final = (
    Algorithm.ES256,
    Algorithm.ES384,
    Algorithm.ES512,
    Algorithm.EDDSA,
    Algorithm.ML_DSA_44,
    Algorithm.ML_DSA_65,
    Algorithm.ML_DSA_87,
)
_RECEIPT_ALGORITHMS: Final = (
    Algorithm.ES256,
    Algorithm.ES384,
    Algorithm.ES512,
    Algorithm.ML_DSA_87,
)
_CHECKPOINT_ALGORITHMS: Final = (Algorithm.EDDSA, Algorithm.ED25519, Algorithm.ML_DSA_44)
_MAX_STATEMENT: Final = 65535  # C2SP tile entries carry a 16-bit length
_MAX_TRUST_FILE: Final = 1024 * 1024
_MAX_CONFIG: Final = 1024 * 1024  # ironroot.toml
_BATCH_LINGER: Final = 0.01
"""Default ``batch_linger`` (s). Measured with ``bench/registration.py --workers 2`` (docs/
transparency.md, "Worker processes"): at 10 ms batches hold ~30-40 entries instead of ~20
at 2 ms, and the sequencer's writer spends ~45 µs less CPU per registration (the batch's
ES384 receipt signature and its check, ~0.8 ms, shared by more entries); p99 from POST to
receipt at half the maximum rate stayed under 100 ms in most runs. The price: a lone
client's registration waits up to 10 ms more. 5 ms made no larger batches than 2 ms. Since
``batch_fill``, the wait ends once as many entries are queued as the last batch took."""
_BATCH_FILL: Final = 32
"""Default ``batch_fill``: queued entries that end the linger at once (the log's ``fill``).
With 64 clients and two workers, batches then form in two cohorts that overlap (one commits
while the workers check the other): 0.28 of one-core ES256 verifications/s instead of 0.21
with the linger alone (docs/transparency.md, "Third round"). It is also the most a batch takes
unless more than twice as many are queued (``Log._take``): a batch that took every queued
entry merged the two cohorts back into one ("Eighth round")."""
_MAX_CLOCK_SKEW: Final = 300.0
"""Default ``max_clock_skew`` (s): how far the latest receipt time stored for the log may be
ahead of a sequencer's clock before it refuses to sign (docs/transparency.md, "Receipt times
never go back")."""
_CERT_SUFFIXES: Final = frozenset((".pem", ".crt", ".cer", ".der"))
_log = logging.getLogger("ironroot.transparency")


@dataclass(frozen=True, slots=True)
class IssuerKey:
    """An issuer identified by key: statements with ``iss`` and ``kid`` = thumbprint of ``key``."""

    iss: str
    key: PublicKey


@dataclass(frozen=True, slots=True)
class WitnessEndpoint:
    """A witness the service asks to cosign its checkpoints: its URL and cosigning key."""

    url: str
    verifier: CosignatureVerifier


@dataclass(frozen=True, slots=True)
class TransparencyConfig:
    """Everything the service reads from ``ironroot.toml``, resolved and checked."""

    data_dir: Path
    service_issuer: str
    receipt_algorithms: tuple[Algorithm, ...]
    accepted_algorithms: frozenset[Algorithm]
    max_statement_bytes: int
    x509_roots: tuple[x509.Certificate, ...]
    policy: str
    issuers: tuple[IssuerKey, ...]
    write_tokens: tuple[str, ...] = field(repr=False)
    """``[auth] write_tokens``: credentials, so never in the configuration's ``repr``."""
    origin: str
    checkpoint_algorithm: Algorithm
    registration_wait: float
    max_batch: int
    batch_linger: float
    batch_fill: int
    max_pending: int
    keys: Mapping[str, Any]
    server: ServerLimits
    _issuer_index: Mapping[tuple[str, bytes], PublicKey] = field(repr=False, compare=False)
    rejected: tuple[str, ...] = ()
    """Trust anchor files left out because they did not load: ``"<path>: <reason>"``."""
    witnesses: tuple[WitnessEndpoint, ...] = ()
    """``[[log.witnesses]]``: the witnesses every new checkpoint is submitted to."""
    witness_quorum: int = 0
    """How many of them must cosign before a checkpoint is published (0: no witnessing)."""
    witness_timeout: float = 10.0
    witness_ca: Path | None = None
    max_clock_skew: float = _MAX_CLOCK_SKEW
    """Seconds the latest stored receipt time may be ahead of the sequencer's clock: within
    it, receipts carry that time until the clock catches up; beyond it, integration stops."""
    reset_receipt_time_from: int | None = None
    """A latest stored receipt time (``iat``) the operator names as wrong (a clock that jumped
    far ahead): while it is the log's latest and more than ``max_clock_skew`` ahead of the
    sequencer's clock, receipts go back to the clock's time instead of stopping; no effect
    otherwise."""
    outside_validity: str = "refuse"
    """``[transparency] outside_validity``: ``"refuse"`` a statement whose own CWT ``exp`` has
    passed or whose ``nbf`` is more than ``max_clock_skew`` ahead (``PolicyRejected``), or
    ``"accept"`` it (an archive of old statements); a non-integer one is malformed either way."""
    cts_prefix: str = ""
    """``[transparency] cts_prefix``: where the Microsoft CTS API is served ("": nowhere)."""
    store: StoreConfig = field(default_factory=StoreConfig)
    """``[log] store``: where the log lives (SQLite in the data directory by default)."""

    @property
    def witness_policy(self) -> WitnessPolicy | None:
        """The k-of-n rule the published checkpoint meets, or ``None`` without witnesses."""
        if not self.witness_quorum:
            return None
        return WitnessPolicy(tuple(w.verifier for w in self.witnesses), self.witness_quorum)

    def issuer_key(self, iss: str, kid: bytes) -> PublicKey | None:
        """The configured key of ``iss`` whose thumbprint is ``kid``, if any."""
        return self._issuer_index.get((iss, kid))

    @property
    def keys_in_files(self) -> bool:
        """Service keys are PEM files under ``keys/`` (else an HSM holds them: ``[keys]``)."""
        return bool(self.keys.get("backend", "files") == "files")

    @property
    def trusts_anything(self) -> bool:
        """An empty trust configuration accepts nothing."""
        return bool(self.issuers or self.x509_roots)


def receipt_key_path(data_dir: Path, algorithm: Algorithm) -> Path:
    return data_dir / KEYS_DIR / f"receipt-{algorithm.label.lower()}.key"


_DEFAULT_TOML: Final = """\
# Ironroot transparency service configuration (see docs/transparency.md).
# Relative paths are relative to this directory. An empty trust configuration accepts nothing:
# add [[transparency.issuers]] tables or x509_roots before registering statements.

[transparency]
service_issuer = "{issuer}"
receipt_algorithms = ["ES384"]
accepted_algorithms = ["ES256", "ES384", "ES512", "EdDSA", "ML-DSA-44", "ML-DSA-65", "ML-DSA-87"]
max_statement_bytes = 65535
x509_roots = []
policy = ""
registration_wait = 2.0   # seconds POST /entries waits for integration before answering 303
max_batch = 4096          # most entries integrated under one root and one signature
batch_linger = 0.01       # seconds the sequencer waits for more entries to share a batch
batch_fill = 32           # queued entries that end that wait at once (and a batch's size, but
                          # for a backlog of more than twice as many, taken up to max_batch)
max_pending = 65536       # entries waiting for integration before POST /entries answers 503
max_clock_skew = 300.0    # seconds the latest receipt time may be ahead of the sequencer's
                          # clock; beyond it integration stops until the clocks agree
outside_validity = "refuse"  # a statement past its CWT exp, or before its nbf: "accept" it?
# reset_receipt_time_from = 1812345678  # the log's latest receipt time, named as wrong:
                          # receipts go back to the clock's time (docs/transparency.md)
# cts_prefix = "/cts"     # also serve the Microsoft CTS API (pyscitt) under this path

# [[transparency.issuers]]
# iss = "https://vendor.example"
# key = "vendor.pub.pem"

[log]
origin = "{origin}"
checkpoint_algorithm = "Ed25519"   # "ML-DSA-44" adds an ML-DSA-44 cosignature to Ed25519
# Witnesses (c2sp.org/tlog-witness): publish a checkpoint only once witness_quorum of them
# cosigned it (docs/witness.md).
# witness_quorum = 1
# [[log.witnesses]]
# url = "http://127.0.0.1:8300"
# key = "witness.example/w1+<key id>+<base64 key>"

[auth]
write_tokens = []   # bearer tokens required on POST /entries; none = open
"""


def lock_data_dir(data_dir: Path) -> DirectoryLock:
    """The data directory's lock (``<data>/.lock``: ``InUse`` if another process holds it),
    and, once held, the temporary files a service or replica killed inside a write left in
    the directory and its ``keys/`` deleted (:meth:`DirectoryLock.remove_stale_temporaries`):
    a half-written copy of a key file is never left lying there."""
    data_dir = Path(data_dir)
    lock = DirectoryLock(data_dir)
    try:
        lock.remove_stale_temporaries(data_dir / KEYS_DIR)
    except BaseException:
        lock.close()
        raise
    return lock


def init_data_dir(data_dir: Path, *, service_issuer: str = "https://transparency.example") -> None:
    """Create the data directory, a default configuration and any missing service keys.

    Existing files are never overwritten, so this is safe on every start. What is missing is
    written while holding the directory's lock (:func:`lock_data_dir`), as a service does:
    of two first starts at once, one makes the keys and the other finds them made or is
    ``InUse``, never both making a key (the later one would replace a key the other may have
    signed with). A directory another process holds (a running service's) is left as it is
    when nothing is missing; when a file is, that is ``InUse``.
    """
    data_dir = Path(data_dir)
    make_dirs(data_dir)
    try:
        lock = lock_data_dir(data_dir)
    except InUse:
        if _nothing_missing(data_dir):
            return
        raise
    with lock:
        write_missing(data_dir, service_issuer=service_issuer)


def _key_files(data_dir: Path, config: TransparencyConfig) -> list[tuple[Path, Algorithm]]:
    """The service key files ``config`` needs, with the algorithm of each (none: an HSM
    holds the keys, see ironroot.hsm.ServiceKeys)."""
    if not config.keys_in_files:
        return []
    files = [(receipt_key_path(data_dir, alg), alg) for alg in config.receipt_algorithms]
    # C2SP: a public log's checkpoint always carries an Ed25519 signature; ML-DSA-44 is added.
    files.append((checkpoint_key_path(data_dir), Algorithm.EDDSA))
    if config.checkpoint_algorithm is Algorithm.ML_DSA_44:
        files.append((pq_checkpoint_key_path(data_dir), Algorithm.ML_DSA_44))
    return files


def _nothing_missing(data_dir: Path) -> bool:
    if to_create(data_dir / CONFIG_FILE):
        return False
    return not any(to_create(path) for path, _ in _key_files(data_dir, load_config(data_dir)))


def write_missing(data_dir: Path, *, service_issuer: str = "https://transparency.example") -> None:
    """:func:`init_data_dir`'s writes, by a caller that holds the directory's lock
    (:func:`lock_data_dir`). Each file is linked into place, never renamed over another
    (``Conflict`` if one is there all the same: made by a process that did not hold the
    lock), so no key is ever replaced."""
    config_path = data_dir / CONFIG_FILE
    if to_create(config_path):
        origin = urlsplit(service_issuer).hostname or service_issuer
        text = _DEFAULT_TOML.format(issuer=service_issuer, origin=origin)
        # 0600: [auth] write_tokens are secrets (warn_if_exposed checks it on every load).
        write_atomic(config_path, text.encode("utf-8"), mode=0o600, exclusive=True)
    for path, algorithm in _key_files(data_dir, load_config(data_dir)):
        if to_create(path):
            make_dirs(path.parent, mode=0o700)
            write_atomic(path, PrivateKey.generate(algorithm).to_pem(), mode=0o600, exclusive=True)


def pq_checkpoint_key_path(data_dir: Path) -> Path:
    """The ML-DSA-44 checkpoint cosigning key, used when ``checkpoint_algorithm = "ML-DSA-44"``."""
    return data_dir / KEYS_DIR / "checkpoint-ml-dsa-44.key"


def load_pq_checkpoint_signer(config: TransparencyConfig) -> PrivateKey | None:
    if config.checkpoint_algorithm is not Algorithm.ML_DSA_44:
        return None
    return _load_private(pq_checkpoint_key_path(config.data_dir), Algorithm.ML_DSA_44)


def load_receipt_signers(config: TransparencyConfig) -> list[PrivateKey]:
    return [
        _load_private(receipt_key_path(config.data_dir, a), a) for a in config.receipt_algorithms
    ]


def _load_private(path: Path, algorithm: Algorithm) -> PrivateKey:
    try:  # a named pipe reads as empty rather than being waited on
        data = read_limited(path, _MAX_TRUST_FILE)
    except OSError as exc:
        raise ConfigError(f"cannot read service key {path}: {exc.strerror}") from exc
    except (InputUnavailable, LimitExceeded) as exc:
        raise ConfigError(f"cannot read service key {exc.detail}") from exc
    warn_if_exposed(path, "a service private key")
    try:
        return PrivateKey.from_pem(data, algorithm)
    except IronrootError as exc:
        raise ConfigError(f"service key {path} is not a {algorithm.label} key") from exc


# --- parsing ------------------------------------------------------------------------------

_SECTIONS: Final = {
    "transparency": {
        "service_issuer",
        "receipt_algorithms",
        "accepted_algorithms",
        "max_statement_bytes",
        "x509_roots",
        "policy",
        "issuers",
        "registration_wait",
        "max_batch",
        "batch_linger",
        "batch_fill",
        "max_pending",
        "max_clock_skew",
        "reset_receipt_time_from",
        "outside_validity",
        "cts_prefix",
    },
    "log": {
        "origin",
        "checkpoint_algorithm",
        "witnesses",
        "witness_quorum",
        "witness_timeout",
        "witness_ca",
        *STORE_KEYS,
    },
    "auth": {"write_tokens"},
    "server": set(ServerLimits.__dataclass_fields__),
    # [keys] selects where the service keys live; ironroot.hsm.ServiceKeysConfig checks it.
    "keys": {
        "backend",
        "pkcs11_library",
        "pkcs11_token",
        "pkcs11_token_serial",
        "pkcs11_pin_file",
        "hsm_dir",
        "hsm_rot_device",
        "hsm_counter",
        "hsm_sealing_secret_file",
        "hsm_identity",
        "hsm_credential_file",
        "handles",
    },
}


def _get(table: Mapping[str, Any], name: str, kind: type, default: Any, where: str) -> Any:
    value = table.get(name, default)
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ConfigError(f"{where}.{name} must be a {kind.__name__}")
    return value


def _str_list(table: Mapping[str, Any], name: str, default: list[str], where: str) -> list[str]:
    value = _get(table, name, list, default, where)
    if not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{where}.{name} must be a list of strings")
    return list(value)


def _algorithms(names: list[str], where: str) -> tuple[Algorithm, ...]:
    out: list[Algorithm] = []
    for name in names:
        try:
            alg = Algorithm.from_label(name)
        except IronrootError as exc:
            raise ConfigError(f"{where}: unknown algorithm {name!r}") from exc
        if alg not in out:
            out.append(alg)
    return tuple(out)


def _read_trust_file(path: Path) -> bytes:
    try:  # a named pipe reads as empty rather than being waited on
        return read_limited(path, _MAX_TRUST_FILE)
    except LimitExceeded as exc:
        raise ConfigError(f"{path} is larger than {_MAX_TRUST_FILE} bytes") from exc


def _root_files(data_dir: Path, paths: list[str]) -> list[Path]:
    files: list[Path] = []
    for rel in paths:
        path = data_dir / rel
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix in _CERT_SUFFIXES)
            if not found:
                raise ConfigError(
                    f"x509_roots: {path} holds no certificate file "
                    f"({', '.join(sorted(_CERT_SUFFIXES))})"
                )
            files.extend(found)
        elif path.exists():
            files.append(path)
        else:
            raise ConfigError(f"x509_roots: {path} does not exist")
    return files


def _load_roots(
    data_dir: Path, paths: list[str], rejected: list[str]
) -> tuple[x509.Certificate, ...]:
    """The certificates of ``x509_roots`` (files, or folders of ``.pem/.crt/.cer/.der``); a
    file that does not load is left out and listed in ``rejected``."""
    loaded, bad = load_each(
        _root_files(data_dir, paths),
        lambda path: load_certificates(_read_trust_file(path), what=f"x509 root {path}"),
        log=_log,
        what="x509 root",
    )
    rejected.extend(bad)
    return tuple(cert for certs in loaded for cert in certs)


def _load_issuers(data_dir: Path, tables: object, rejected: list[str]) -> tuple[IssuerKey, ...]:
    if not isinstance(tables, list):
        raise ConfigError("transparency.issuers must be an array of tables")
    out: list[IssuerKey] = []
    for i, table in enumerate(tables):
        where = f"transparency.issuers[{i}]"
        if not isinstance(table, dict) or set(table) - {"iss", "key"}:
            raise ConfigError(f"{where} takes exactly 'iss' and 'key'")
        iss = _get(table, "iss", str, None, where)
        key_rel = _get(table, "key", str, None, where)
        if not iss:
            raise ConfigError(f"{where}.iss must not be empty")
        path = data_dir / key_rel
        if not path.is_file():
            raise ConfigError(f"{where}: {path} does not exist")
        keys, bad = load_each(
            [path],
            lambda p: PublicKey.from_pem(_read_trust_file(p)),
            log=_log,
            what=f"{where} key",
        )
        rejected.extend(bad)
        out.extend(IssuerKey(iss, key) for key in keys)
    return tuple(out)


def _canonical(value: object) -> Any:
    """``value`` as JSON data that tells any two different configurations apart."""
    if is_dataclass(value) and not isinstance(value, type):
        return {f.name: _canonical(getattr(value, f.name)) for f in fields(value) if f.compare}
    if isinstance(value, PublicKey):
        return value.to_der().hex()
    if isinstance(value, x509.Certificate):
        return value.public_bytes(serialization.Encoding.DER).hex()
    if isinstance(value, enum.Enum):
        return f"{type(value).__name__}.{value.name}"
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, Path):
        return str(value)
    if value is None or isinstance(value, (str, int, float)):
        return value
    if isinstance(value, Mapping):
        return {str(k): _canonical(v) for k, v in value.items()}
    if isinstance(value, (set, frozenset)):
        return sorted(json.dumps(_canonical(v), sort_keys=True) for v in value)
    if isinstance(value, (list, tuple)):
        return [_canonical(v) for v in value]
    return repr(value)


def config_fingerprint(config: TransparencyConfig) -> str:
    """SHA-256 (hex) over everything ``config`` says, the contents of the files it read
    (issuer keys, trust anchors) included: two loads of ``ironroot.toml`` give the same
    fingerprint exactly when they configure the service alike."""
    text = json.dumps(_canonical(config), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def load_config(data_dir: Path) -> TransparencyConfig:
    """Read and check ``<data_dir>/ironroot.toml``; every ``ConfigError`` names that file."""
    path = data_dir / CONFIG_FILE
    with naming_file(path):
        return _load_config(data_dir, path)


def _load_config(data_dir: Path, path: Path) -> TransparencyConfig:
    if path.exists() and not path.is_file():  # a pipe would read as empty: all defaults
        raise ConfigError(f"{path} is not a regular file")
    try:  # within a limit, and a named pipe is never waited on
        raw = tomllib.loads(read_limited(path, _MAX_CONFIG).decode("utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from exc
    except (InputUnavailable, LimitExceeded) as exc:
        raise ConfigError(f"cannot read {exc.detail}") from exc
    except (ValueError, RecursionError) as exc:  # TOML, UTF-8, int() of 4,301+ digits
        raise ConfigError(f"{path} is not valid TOML: {exc}") from exc
    warn_if_trust_writable(path)
    for section, value in raw.items():
        if section not in _SECTIONS or not isinstance(value, dict):
            raise ConfigError(f"unknown section [{section}] in {path}")
        unknown = set(value) - _SECTIONS[section]
        if unknown:
            raise ConfigError(f"unknown key {section}.{sorted(unknown)[0]} in {path}")
    tr = raw.get("transparency", {})
    lg = raw.get("log", {})
    auth = raw.get("auth", {})

    issuer = _get(tr, "service_issuer", str, "https://transparency.example", "transparency")
    receipt_algs = _algorithms(
        _str_list(tr, "receipt_algorithms", ["ES384"], "transparency"), "receipt_algorithms"
    )
    if not receipt_algs:
        raise ConfigError("transparency.receipt_algorithms must name at least one algorithm")
    for alg in receipt_algs:
        if alg not in _RECEIPT_ALGORITHMS:
            raise ConfigError(f"receipt_algorithms: {alg.label} cannot sign receipts here")
    accepted = _algorithms(
        _str_list(tr, "accepted_algorithms", [a.label for a in DEFAULT_ACCEPTED], "transparency"),
        "accepted_algorithms",
    )
    # EdDSA (-8) and Ed25519 (-19) name the same scheme: accepting one accepts both.
    if Algorithm.EDDSA in accepted or Algorithm.ED25519 in accepted:
        accepted = (*accepted, Algorithm.EDDSA, Algorithm.ED25519)
    max_bytes = _get(tr, "max_statement_bytes", int, _MAX_STATEMENT, "transparency")
    if not 0 < max_bytes <= _MAX_STATEMENT:
        raise ConfigError(f"transparency.max_statement_bytes must be in 1..{_MAX_STATEMENT}")
    wait = _get(tr, "registration_wait", float, 2.0, "transparency")
    if not 0.0 <= wait <= 60.0:
        raise ConfigError("transparency.registration_wait must be between 0 and 60 seconds")
    max_batch = _get(tr, "max_batch", int, 4096, "transparency")
    if not 1 <= max_batch <= 65536:
        raise ConfigError("transparency.max_batch must be between 1 and 65536")
    linger = _get(tr, "batch_linger", float, _BATCH_LINGER, "transparency")
    if not 0.0 <= linger <= 0.1:
        raise ConfigError("transparency.batch_linger must be between 0 and 0.1 seconds")
    fill = _get(tr, "batch_fill", int, _BATCH_FILL, "transparency")
    if not 1 <= fill <= 65536:
        raise ConfigError("transparency.batch_fill must be between 1 and 65536")
    max_pending = _get(tr, "max_pending", int, 65536, "transparency")
    if not 1 <= max_pending <= 10_000_000:
        raise ConfigError("transparency.max_pending must be between 1 and 10000000")
    max_skew = _get(tr, "max_clock_skew", float, _MAX_CLOCK_SKEW, "transparency")
    if not 1.0 <= max_skew <= 31_622_400.0:
        raise ConfigError("transparency.max_clock_skew must be between 1 and 31622400 seconds")
    reset_from = tr.get("reset_receipt_time_from")
    if reset_from is not None:
        reset_from = _get(tr, "reset_receipt_time_from", int, None, "transparency")
        if reset_from < 0:
            raise ConfigError(
                "transparency.reset_receipt_time_from must be a receipt time (0 or more)"
            )
    policy = _get(tr, "policy", str, "", "transparency").strip()
    outside_validity = _get(tr, "outside_validity", str, "refuse", "transparency")
    if outside_validity not in ("refuse", "accept"):
        raise ConfigError('transparency.outside_validity is "refuse" or "accept"')
    cts_prefix = _get(tr, "cts_prefix", str, "", "transparency")
    try:
        check_cts_prefix(cts_prefix)
    except MalformedInput as exc:
        raise ConfigError(f"transparency.cts_prefix: {exc.detail}") from exc
    rejected: list[str] = []
    issuers = _load_issuers(data_dir, tr.get("issuers", []), rejected)
    roots = _load_roots(data_dir, _str_list(tr, "x509_roots", [], "transparency"), rejected)
    origin = _get(lg, "origin", str, urlsplit(issuer).hostname or issuer, "log")
    if not origin or any(c.isspace() for c in origin) or "+" in origin:
        raise ConfigError("log.origin must be non-empty without spaces or '+'")
    cp_alg = _algorithms([_get(lg, "checkpoint_algorithm", str, "Ed25519", "log")], "log")[0]
    if cp_alg not in _CHECKPOINT_ALGORITHMS:
        raise ConfigError("log.checkpoint_algorithm must be Ed25519 or ML-DSA-44")
    if cp_alg is Algorithm.ED25519:
        cp_alg = Algorithm.EDDSA
    witnesses = _witnesses(lg.get("witnesses", []))
    # A witness is its name: its Ed25519 and ML-DSA-44 keys, listed apart, count once.
    named = len({w.verifier.name for w in witnesses})
    quorum = _get(lg, "witness_quorum", int, named, "log")
    if not 0 <= quorum <= named or (witnesses and not quorum):
        raise ConfigError(
            f"log.witness_quorum must be between 1 and {named} (the witnesses named)"
            if witnesses
            else "log.witness_quorum needs [[log.witnesses]] to count"
        )
    witness_timeout = _get(lg, "witness_timeout", float, 10.0, "log")
    if not 0.1 <= witness_timeout <= 300.0:
        raise ConfigError("log.witness_timeout must be between 0.1 and 300 seconds")
    witness_ca_rel = lg.get("witness_ca")
    if witness_ca_rel is not None and (not isinstance(witness_ca_rel, str) or not witness_ca_rel):
        raise ConfigError("log.witness_ca must be a file name")
    witness_ca = None if witness_ca_rel is None else data_dir / witness_ca_rel
    if witness_ca is not None and not witness_ca.is_file():
        raise ConfigError(f"log.witness_ca: {witness_ca} does not exist")
    store = StoreConfig.from_table(lg)
    if store.has_password:
        warn_if_exposed(path, "log.dsn (it holds a password)")
    keys = dict(raw.get("keys", {}))
    in_hsm = set(keys) - {"backend"}
    if keys.get("backend", "files") == "files" and in_hsm:
        # else init_data_dir would write the service keys to files the operator meant for an HSM
        raise ConfigError(
            f'keys.{sorted(in_hsm)[0]} needs keys.backend = "pkcs11" or "hsm" in {path}'
        )
    tokens = _str_list(auth, "write_tokens", [], "auth")
    if tokens:
        warn_if_exposed(path, "auth.write_tokens")
    if any(not t for t in tokens):
        raise ConfigError("auth.write_tokens must not contain empty tokens")
    for i, token in enumerate(tokens):
        # The Authorization field is read stripped, and in Latin-1 where the token is compared
        # in UTF-8: any other token would be refused on every request
        if token != token.strip() or not all(" " <= c <= "~" for c in token):
            raise ConfigError(
                f"auth.write_tokens[{i}] cannot be sent as 'Authorization: Bearer <token>': a"
                " token is printable ASCII, without spaces at either end"
            )
    return TransparencyConfig(
        data_dir=data_dir,
        service_issuer=issuer,
        receipt_algorithms=receipt_algs,
        accepted_algorithms=frozenset(accepted),
        max_statement_bytes=max_bytes,
        x509_roots=roots,
        policy=policy,
        issuers=issuers,
        write_tokens=tuple(tokens),
        origin=origin,
        checkpoint_algorithm=cp_alg,
        registration_wait=wait,
        max_batch=max_batch,
        batch_linger=linger,
        batch_fill=fill,
        max_pending=max_pending,
        max_clock_skew=max_skew,
        reset_receipt_time_from=reset_from,
        outside_validity=outside_validity,
        keys=keys,
        server=ServerLimits.from_table(raw.get("server"), "[server]"),
        _issuer_index={(ik.iss, ik.key.kid): ik.key for ik in issuers},
        rejected=tuple(rejected),
        witnesses=witnesses,
        witness_quorum=quorum,
        witness_timeout=witness_timeout,
        witness_ca=witness_ca,
        cts_prefix=cts_prefix,
        store=store,
    )


def _witnesses(value: object) -> tuple[WitnessEndpoint, ...]:
    if not isinstance(value, list):
        raise ConfigError("log.witnesses must be an array of tables")
    out: list[WitnessEndpoint] = []
    for i, table in enumerate(value):
        where = f"log.witnesses[{i}]"
        if not isinstance(table, dict) or set(table) != {"url", "key"}:
            raise ConfigError(f"{where} takes exactly 'url' and 'key'")
        url, key = table["url"], table["key"]
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise ConfigError(f"{where}.url must be an http:// or https:// URL")
        if not isinstance(key, str):
            raise ConfigError(f"{where}.key must be the witness's vkey")
        try:
            verifier = CosignatureVerifier.from_vkey(key)
        except IronrootError as exc:
            raise ConfigError(f"{where}.key: {exc.detail}") from exc
        if any(w.verifier == verifier for w in out):
            raise ConfigError(f"{where}: the witness key {verifier.name} is listed twice")
        out.append(WitnessEndpoint(url.rstrip("/"), verifier))
    return tuple(out)
