"""The verifier's data directory: ``<data>/attestation.toml``, its key and its endorsements.

::

    [attestation]
    host = "127.0.0.1"
    port = 8100
    signing_key = "verifier-es384.pem"        # ES384 PKCS#8 PEM; signs every EAR
    vendor_roots = ["vendor-ca"]              # RoT vendor CA certificates (files or folders)
    service_keys = ["scitt-keys.cbor"]        # transparency service keys: COSE Key Sets
                                              # (as /.well-known/scitt-keys serves) or PEM
    service_issuer = "https://ts.example"     # optional: the receipts' CWT iss must name
                                              # this service (else UnknownIssuer
                                              # untrusted-service); omitted: keys decide
    reference_values = ["reference-values"]   # Transparent Statements of CoRIMs and of GPU
                                              # RIMs (application/swid+xml) (*.ts, *.cbor)
    rim_roots = []                            # RIM root CAs trusted besides NVIDIA's pinned
                                              # one (a lab's); none by default
    reviews = ["reviews"]                     # Transparent Statements of SAFE SFRs
    review_providers = ["review-providers"]   # SAFE review-provider public keys
    policy_file = ""                          # a TOML file of appraisal rules; "" = default
                                              # (not inline CEL: that is ironroot.toml's policy)
    result_lifetime = 3600                    # seconds an EAR is valid (1..31622400)
    nonce_lifetime = 300                      # seconds a challenge is valid
    collateral = "intel-collateral"           # Intel TDX collateral directory ("" = none):
                                              # tcb_info*.json, qe_identity.json,
                                              # tcb_signing_chain.pem, pck_crl*, root_crl.*
    crls = ["crls"]                           # CRL files or folders (AMD KDS, Intel PCS)
    allow_stale_collateral = false            # accept CRLs/TCB Info past their nextUpdate

    [[attestation.products]]                  # who may publish reference values, per
    vendor = "Example Vendor"                 # product (CoRIM class vendor, and model: omit
    model = "bmc"                             # for every model); none = accept from no one
    issuers = ["https://vendor.example"]      # statement issuers (iss) allowed
    evidence = { format = "ironroot", root = "<sha256 of its vendor CA>" }
                                              # the evidence its values apply to (format,
                                              # identity claims); needed beside other products

    [attestation.vendor_keys]                 # optional: issuer → its statement keys
    "https://vendor.example" = ["vendor.pub.pem"]

    [keys]                                    # optional: the EAR key in an HSM instead of
    backend = "pkcs11"                        # signing_key (see ironroot.hsm.ServiceKeys)

Relative paths are relative to the data directory. Endorsements are read when the service is
built (:meth:`AttestationConfig.service`): a file that does not load or verify (a statement, a
vendor root, a key) is left out, logged as a warning naming the file and the error, and listed
in ``Endorsements.rejected``: one bad file never stops the verifier. Collateral and CRLs are
read then too: a file that does not load is left out and listed in
``AttestationService.collateral_problems`` (reported when the service starts and in the
reasons of the EARs it concerns); it never stops the service.
Freshness is judged at each verification. This module does I/O; the appraisal core does not.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import json
import logging
import tomllib
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, TypeVar

from ironroot._fileio import (
    DirectoryLock,
    load_each,
    make_dirs,
    naming_file,
    read_config,
    to_create,
    warn_if_exposed,
    warn_if_trust_writable,
    write_atomic,
)
from ironroot.attestation._collateral_files import (
    CollateralFiles,
    read_tdx_collateral,
)
from ironroot.attestation._endorsements import (
    Endorsements,
    ReferencePublisher,
    publishers_of_release,
)
from ironroot.attestation._http import AttestationService
from ironroot.attestation._policy import DEFAULT_POLICY, AppraisalPolicy
from ironroot.attestation.evidence import EVIDENCE_FORMATS
from ironroot.cose import decode_key_set
from ironroot.crypto import (
    Algorithm,
    PrivateKey,
    Signer,
    Verifier,
    load_certificates,
    load_verifier,
    save_signer,
)
from ironroot.ear import ChallengeLimits, NonceStore
from ironroot.errors import ConfigError, IronrootError
from ironroot.hsm import ServiceKeys, ServiceKeysConfig
from ironroot.http import ServerLimits
from ironroot.rim import builtin_rim_roots
from ironroot.safe import ProviderKeys

__all__ = ["CONFIG_FILE", "AttestationConfig", "init_attestation_dir", "load_attestation_config"]

CONFIG_FILE: Final = "attestation.toml"
_MAX_FILE: Final = 1024 * 1024
_KEY_PURPOSES: Final = frozenset({"ear"})  # the one key [keys.handles] may name
_STATEMENT_SUFFIXES: Final = frozenset((".ts", ".cbor", ".cose", ".scitt"))
_CERT_SUFFIXES: Final = frozenset((".pem", ".crt", ".cer", ".der"))
_PROVIDER_SUFFIXES: Final = frozenset((".pem", ".pub", ".crt", ".cer", ".der", ".key"))
_log = logging.getLogger("ironroot.attestation")
_T = TypeVar("_T")
_TEMPLATE: Final = """\
[attestation]
host = "127.0.0.1"
port = 8100
signing_key = "verifier-es384.pem"
vendor_roots = ["vendor-ca"]
service_keys = ["service-keys"]
reference_values = ["reference-values"]
reviews = ["reviews"]
review_providers = ["review-providers"]
policy_file = ""
result_lifetime = 3600
nonce_lifetime = 300
collateral = ""
crls = []
allow_stale_collateral = false
"""
_FOLDERS: Final = ("vendor-ca", "service-keys", "reference-values", "reviews", "review-providers")


def _files(paths: Iterable[Path], suffixes: frozenset[str]) -> list[Path]:
    out: list[Path] = []
    for path in paths:
        if path.is_dir():
            out.extend(
                sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in suffixes)
            )
        elif path.exists():
            out.append(path)
        else:
            raise ConfigError(f"{path} does not exist")
    return out


def _service_key_file(path: Path) -> dict[bytes, Verifier]:
    data = read_config(path, _MAX_FILE)
    if data[:1] and 0x80 <= data[0] <= 0x9F:
        return dict(decode_key_set(data))
    key = load_verifier(data)
    return {key.kid: key}


def _labelled_file(path: Path) -> tuple[str, bytes]:
    return str(path), read_config(path, _MAX_FILE)


@dataclass(frozen=True, slots=True)
class AttestationConfig:
    """The parsed ``attestation.toml`` (paths resolved against the data directory)."""

    data_dir: Path
    host: str = "127.0.0.1"
    port: int = 8100
    signing_key: Path = Path("verifier-es384.pem")
    vendor_roots: tuple[Path, ...] = ()
    service_keys: tuple[Path, ...] = ()
    reference_values: tuple[Path, ...] = ()
    reviews: tuple[Path, ...] = ()
    review_providers: tuple[Path, ...] = ()
    vendor_keys: Mapping[str, tuple[Path, ...]] = field(default_factory=dict)
    policy: Path | None = None
    result_lifetime: int = 3600
    nonce_lifetime: int = 300
    keys: Mapping[str, Any] = field(default_factory=dict)
    server: ServerLimits = field(default_factory=ServerLimits)
    challenges: ChallengeLimits = field(default_factory=ChallengeLimits)
    collateral: Path | None = None
    crls: tuple[Path, ...] = ()
    allow_stale_collateral: bool = False
    products: tuple[ReferencePublisher, ...] = ()
    rim_roots: tuple[Path, ...] = ()
    service_issuer: str | None = None

    def load_collateral(self) -> CollateralFiles:
        """The configured collateral and CRLs, read leniently (problems listed, never raised)."""
        files = read_tdx_collateral(
            self.collateral, crls=[p for p in self.crls if p.exists()], strict=False
        )
        missing = tuple(f"{p}: does not exist" for p in self.crls if not p.exists())
        collateral = files.collateral
        return CollateralFiles(
            None if collateral is None or collateral.empty else collateral,
            (*files.problems, *missing),
        )

    def load_policy(self) -> AppraisalPolicy:
        if self.policy is None:
            return DEFAULT_POLICY
        return AppraisalPolicy.from_toml(
            read_config(self.policy, _MAX_FILE).decode("utf-8", "replace")
        )

    def endorsements(self, now: dt.datetime) -> Endorsements:
        """Read and verify every configured endorsement. A file that does not load or verify
        (a statement, a vendor root, a service, vendor or review-provider key) is left out,
        logged as a warning and listed in ``Endorsements.rejected``; a configured path that
        does not exist is a ``ConfigError``."""
        rejected: list[str] = []

        def each(paths: Iterable[Path], load: Callable[[Path], _T], what: str) -> list[_T]:
            loaded, bad = load_each(paths, load, log=_log, what=what)
            rejected.extend(bad)
            return loaded

        service_keys: dict[bytes, Verifier] = {}
        for keys in each(
            _files(self.service_keys, frozenset((".cbor", ".pem"))),
            _service_key_file,
            "service key file",
        ):
            service_keys.update(keys)
        roots = each(_files(self.vendor_roots, _CERT_SUFFIXES), _labelled_file, "vendor root")
        vendor_keys = (
            {
                iss: each(
                    paths,
                    lambda p: load_verifier(read_config(p, _MAX_FILE)),
                    f"vendor key of {iss}",
                )
                for iss, paths in self.vendor_keys.items()
            }
            if self.vendor_keys
            else None
        )
        providers = (
            ProviderKeys(
                each(
                    _files(self.review_providers, _PROVIDER_SUFFIXES),
                    ProviderKeys.read_key_file,
                    "review provider key",
                )
            )
            if self.review_providers
            else None
        )
        statements = each(
            _files(self.reference_values, _STATEMENT_SUFFIXES), _labelled_file, "reference values"
        )
        reviews = each(_files(self.reviews, _STATEMENT_SUFFIXES), _labelled_file, "review")
        extra_rim_roots = [
            cert
            for certs in each(
                _files(self.rim_roots, _CERT_SUFFIXES),
                lambda p: load_certificates(read_config(p, _MAX_FILE), what=str(p)),
                "RIM root",
            )
            for cert in certs
        ]
        if statements and not self.products:
            _log.warning(
                "no [[attestation.products]] is configured: reference values are accepted "
                "from no issuer"
            )
        built = Endorsements.build(
            service_keys=service_keys,
            reference_statements=statements,
            review_statements=reviews,
            providers=providers,
            vendor_keys=vendor_keys,
            publishers=self.products,
            vendor_roots=roots,
            now=now,
            rim_roots=(*builtin_rim_roots(), *extra_rim_roots) if extra_rim_roots else None,
            service_issuer=self.service_issuer,
        )
        for product in built.unselected():
            _log.warning(
                "[[attestation.products]] vendor %r model %r names no evidence it is for: "
                "beside other products, its reference values match no evidence",
                product.vendor,
                product.model,
            )
        for product in built.ambiguous():
            _log.warning(
                "[[attestation.products]] vendor %r model %r: the evidence it selects is also "
                "selected for other products' reference values, so it is of no one product "
                "and matches no reference value; give each product a selector of its own",
                product.vendor,
                product.model,
            )
        return dataclasses.replace(built, rejected=(*rejected, *built.rejected))

    @contextlib.contextmanager
    def open_service(self, now: dt.datetime) -> Iterator[AttestationService]:
        """The verifier this configuration describes, its endorsements read at ``now``.

        The EAR key is ``signing_key`` (a PEM file) unless a ``[keys]`` table puts it in an
        HSM (``ironroot.hsm.ServiceKeys``, purpose ``"ear"``; created there on first use); the
        HSM stays open while the service is in use.
        """
        keys_config = ServiceKeysConfig.parse(self.keys, self.data_dir, purposes=_KEY_PURPOSES)
        with contextlib.ExitStack() as stack:
            key: Signer
            if keys_config.in_hsm:
                keys = stack.enter_context(ServiceKeys(keys_config))
                key = keys.signer("ear", Algorithm.ES384, create=True)
            else:
                warn_if_exposed(self.signing_key, "the verifier's signing key")
                key = PrivateKey.from_pem(read_config(self.signing_key, _MAX_FILE))
                if key.algorithm is not Algorithm.ES384:
                    raise ConfigError(f"{self.signing_key} is not an ES384 key")
            yield self._service(now, key)

    def _service(self, now: dt.datetime, key: Signer) -> AttestationService:
        loaded = self.load_collateral()
        collateral = loaded.collateral
        return AttestationService(
            endorsements=self.endorsements(now),
            signing_key=key,
            policy=self.load_policy(),
            lifetime=self.result_lifetime,
            nonces=NonceStore(lifetime=self.nonce_lifetime, limits=self.challenges),
            collateral=collateral,
            crls=collateral.crls if collateral is not None else (),
            allow_stale_collateral=self.allow_stale_collateral,
            collateral_problems=loaded.problems,
        )


def _paths(data_dir: Path, table: Mapping[str, Any], name: str) -> tuple[Path, ...]:
    value = table.get(name, [])
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"attestation.{name} must be a list of paths")
    return tuple(data_dir / v for v in value)


def _int(table: Mapping[str, Any], name: str, default: int) -> int:
    value = table.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"attestation.{name} must be a positive integer")
    return value


_MAX_RESULT_LIFETIME: Final = 31_622_400
"""The longest ``result_lifetime`` (366 days): an EAR's ``exp`` stays a time every reader
parses (a lifetime of 1e30 s signed EARs past the year 9999, which none could read)."""


def _lifetime(table: Mapping[str, Any]) -> int:
    value = _int(table, "result_lifetime", 3600)
    if value > _MAX_RESULT_LIFETIME:
        raise ConfigError(
            "attestation.result_lifetime must be a number of seconds from 1 to "
            f"{_MAX_RESULT_LIFETIME} (366 days)"
        )
    return value


def _products(value: object) -> tuple[ReferencePublisher, ...]:
    """``[[attestation.products]]``: vendor (text), optional model (text), issuers (texts)."""
    if not isinstance(value, list) or not all(isinstance(t, dict) for t in value):
        raise ConfigError("attestation.products must be an array of tables ([[...]])")
    out = []
    for number, table in enumerate(value, 1):
        where = f"[[attestation.products]] #{number}"
        unknown = set(table) - {"vendor", "model", "issuers", "evidence"}
        if unknown:
            raise ConfigError(f"{where}: unknown setting {sorted(unknown)[0]}")
        vendor, model, issuers = table.get("vendor"), table.get("model"), table.get("issuers")
        if not isinstance(vendor, str) or not vendor:
            raise ConfigError(f"{where}: vendor must be non-empty text (the CoRIM class vendor)")
        if model is not None and (not isinstance(model, str) or not model):
            raise ConfigError(f"{where}: model must be non-empty text, or left out")
        if (
            not isinstance(issuers, list)
            or not issuers
            or not all(isinstance(i, str) and i for i in issuers)
        ):
            raise ConfigError(f"{where}: issuers must list at least one issuer (text)")
        evidence = table.get("evidence", {})
        if (
            not isinstance(evidence, dict)
            or ("evidence" in table and not evidence)
            or not all(isinstance(v, str) and v for v in evidence.values())
        ):
            raise ConfigError(
                f"{where}: evidence must be a table of claims (format, root, …) and their text"
            )
        if "format" in evidence and evidence["format"] not in EVIDENCE_FORMATS:
            raise ConfigError(
                f"{where}: evidence format {evidence['format']!r} is not one of "
                f"{', '.join(EVIDENCE_FORMATS)}"
            )
        out.append(ReferencePublisher(vendor, model, frozenset(issuers), tuple(evidence.items())))
    return tuple(out)


def load_attestation_config(data_dir: Path) -> AttestationConfig:
    """Parse ``<data_dir>/attestation.toml``; every ``ConfigError`` names that file."""
    path = data_dir / CONFIG_FILE
    with naming_file(path):
        return _load(data_dir, path)


def _load(data_dir: Path, path: Path) -> AttestationConfig:
    try:
        document = tomllib.loads(read_config(path, _MAX_FILE).decode("utf-8"))
    except (ValueError, RecursionError) as exc:  # TOML, UTF-8, int() of 4,301+ digits
        raise ConfigError(f"{path} is not valid TOML: {exc}") from exc
    warn_if_trust_writable(path)
    table = document.get("attestation")
    if not isinstance(table, dict):
        raise ConfigError(f"{path} has no [attestation] table")
    extra = set(document) - {"attestation", "keys", "server", "challenges"}
    if extra:
        raise ConfigError(f"unknown section [{sorted(extra)[0]}] in {path}")
    keys_table = document.get("keys", {})
    if not isinstance(keys_table, dict):
        raise ConfigError("[keys] must be a table")
    # checked now, opened when serving
    ServiceKeysConfig.parse(keys_table, data_dir, purposes=_KEY_PURPOSES)
    known = {
        "host",
        "port",
        "signing_key",
        "vendor_roots",
        "service_keys",
        "reference_values",
        "reviews",
        "review_providers",
        "vendor_keys",
        "policy",
        "policy_file",
        "result_lifetime",
        "nonce_lifetime",
        "collateral",
        "crls",
        "allow_stale_collateral",
        "products",
        "rim_roots",
        "service_issuer",
    }
    unknown = set(table) - known
    if unknown:
        raise ConfigError(f"unknown attestation settings: {', '.join(sorted(unknown))}")
    vendor_keys = table.get("vendor_keys", {})
    if not isinstance(vendor_keys, dict):
        raise ConfigError("attestation.vendor_keys must map issuers to key files")
    if table.get("policy", "") != "":
        raise ConfigError(
            'attestation.policy: name the appraisal rules file with policy_file = "FILE" '
            "(a TOML file of rules; inline CEL is the transparency service's policy in "
            "ironroot.toml, not this)"
        )
    policy = table.get("policy_file", "")
    host = table.get("host", "127.0.0.1")
    signing_key = table.get("signing_key", "verifier-es384.pem")
    if not isinstance(policy, str) or not isinstance(host, str) or not isinstance(signing_key, str):
        raise ConfigError("attestation.policy_file, host and signing_key must be text")
    collateral = table.get("collateral", "")
    if not isinstance(collateral, str):
        raise ConfigError("attestation.collateral must be a directory path (text)")
    allow_stale = table.get("allow_stale_collateral", False)
    if not isinstance(allow_stale, bool):
        raise ConfigError("attestation.allow_stale_collateral must be true or false")
    service_issuer = table.get("service_issuer")
    if service_issuer is not None and (
        not isinstance(service_issuer, str) or not 1 <= len(service_issuer) <= 256
    ):
        raise ConfigError(
            "attestation.service_issuer must be text of 1 to 256 characters (the transparency "
            "service's issuer)"
        )
    port = table.get("port", 8100)
    if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
        raise ConfigError("attestation.port must be a TCP port (1-65535)")
    return AttestationConfig(
        data_dir=data_dir,
        host=host,
        port=port,
        signing_key=data_dir / signing_key,
        vendor_roots=_paths(data_dir, table, "vendor_roots"),
        service_keys=_paths(data_dir, table, "service_keys"),
        reference_values=_paths(data_dir, table, "reference_values"),
        reviews=_paths(data_dir, table, "reviews"),
        review_providers=_paths(data_dir, table, "review_providers"),
        vendor_keys={iss: _paths(data_dir, vendor_keys, iss) for iss in vendor_keys},
        policy=data_dir / policy if policy else None,
        result_lifetime=_lifetime(table),
        nonce_lifetime=_int(table, "nonce_lifetime", 300),
        keys=keys_table,
        collateral=data_dir / collateral if collateral else None,
        crls=_paths(data_dir, table, "crls"),
        allow_stale_collateral=allow_stale,
        products=_products(table.get("products", [])),
        rim_roots=_paths(data_dir, table, "rim_roots"),
        service_issuer=service_issuer,
        server=ServerLimits.from_table(document.get("server"), "[server]"),
        challenges=ChallengeLimits.from_table(document.get("challenges")),
    )


def _toml_text(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)  # a JSON string is a TOML basic string


def products_toml(products: Iterable[ReferencePublisher]) -> str:
    """``[[attestation.products]]`` tables for ``products``."""
    out = []
    for product in products:
        out.append("\n[[attestation.products]]")
        out.append(f"vendor = {_toml_text(product.vendor)}")
        if product.model is not None:
            out.append(f"model = {_toml_text(product.model)}")
        issuers = ", ".join(_toml_text(i) for i in sorted(product.issuers))
        out.append(f"issuers = [{issuers}]")
        if product.evidence:
            pairs = ", ".join(f"{_toml_text(k)} = {_toml_text(v)}" for k, v in product.evidence)
            out.append(f"evidence = {{ {pairs} }}")
    return "\n".join(out) + "\n" if out else ""


def init_attestation_dir(data_dir: Path, *, release: Path | None = None) -> Path:
    """Create a data directory: the template config, its folders and an ES384 signing key.

    With ``release`` (the vendor's first release: a Transparent Statement of its CoRIM), the
    products it publishes reference values for are written to ``[[attestation.products]]``
    with its issuer as the one allowed publisher, and it is copied into ``reference-values/``.
    Without it, no product is configured and no reference value is accepted until one is.
    Refuses to overwrite an existing configuration (``ConfigError``); a release that does not
    parse raises before anything is written. It writes holding the directory's lock (the one
    ``attest serve`` takes): another init under way is ``InUse``. The signing key an init
    killed before its configuration left is kept and used, never replaced.
    """
    config = data_dir / CONFIG_FILE
    if not to_create(config):
        raise ConfigError(f"{config} already exists")
    products: tuple[ReferencePublisher, ...] = ()
    release_data = b""
    if release is not None:
        release_data = read_config(release, _MAX_FILE)
        try:
            products = publishers_of_release(release_data)
        except IronrootError as exc:
            raise ConfigError(f"{release} is not a release to trust: {exc.detail}") from exc
    make_dirs(data_dir)
    with DirectoryLock(data_dir, ".serve.lock", what="attestation data directory") as lock:
        lock.remove_stale_temporaries()  # a killed init's
        if not to_create(config):  # another init's, done meanwhile
            raise ConfigError(f"{config} already exists")
        for folder in _FOLDERS:
            make_dirs(data_dir / folder)
        key = data_dir / "verifier-es384.pem"
        if to_create(key):  # else a killed init's, which signed nothing (no configuration)
            save_signer(PrivateKey.generate(Algorithm.ES384), key)
        if release is not None:
            write_atomic(data_dir / "reference-values" / release.name, release_data, mode=0o644)
        text = _TEMPLATE + products_toml(products)
        write_atomic(config, text.encode("utf-8"), mode=0o644, exclusive=True)
    return config
