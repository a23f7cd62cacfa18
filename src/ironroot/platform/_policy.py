"""What a platform trusts for its updates: :class:`PlatformTrust` and :class:`SafeRequirement`.

The RoT holds the values the update checks (:mod:`ironroot.platform._checks`) decide with:

* ``platform`` — the platform id every PFM it accepts must carry;
* ``vendor_ecc`` / ``vendor_pqc`` — the vendor's ECDSA P-384 and ML-DSA-87 public keys
  (SubjectPublicKeyInfo DER), **all** of them, in key-descriptor order: a PFM is checked
  against the fused vendor key descriptor hash, which covers every key of both descriptors,
  so a product that keeps spare keys for revocation lists them all here;
* ``service_keys`` — the transparency services whose receipts count (``kid`` → key; each
  ``kid`` is the key's RFC 9679 thumbprint, as receipts name it). At least one: a platform
  that trusts no log could never be updated;
* ``service_issuer`` — optional: the transparency service's issuer (its configuration's
  ``issuer``, what its receipts' protected CWT ``iss`` says). Given, a receipt that names no
  issuer or another one is refused even when a trusted key signed it (``UnknownIssuer``
  ``untrusted-service``); absent (the default), the service keys alone decide. Every receipt
  is also held to the decision's clock: one issued (``iat``) more than 300 s after the
  decision's ``now`` is refused (``VerificationFailed`` ``receipt-from-the-future``);
* ``issuers`` — per component (``bmc``, ``host``, ``nic``, …, and ``pfm`` for Platform
  Firmware Manifests) the Signed Statement issuers (``iss``) allowed to publish its firmware.
  A component without an entry accepts no issuer;
* ``safe`` — per component, an optional :class:`SafeRequirement`: an OCP SAFE review must be
  on the log, signed by one of its review providers, and no such review may leave an open
  finding above its ``max_severity`` (one clean review does not hide another's finding);
* ``healthy_boots`` — how many healthy boots of new firmware before it replaces the
  recovery image (≥ 1);
* ``expired_manifest`` — what the RoT does at boot with an installed BMC image whose manifest
  is outside its validity dates: ``"report"`` (the default) boots it and reports it (a
  ``ManifestOutsideValidity`` event, the boot state's ``manifest_validity``), ``"refuse"``
  holds the BMC in reset (``ManifestExpired``). An update to such a manifest is refused
  either way (docs/platform.md "Manifest validity"). The same setting decides for an
  installed SPDM device whose logged reference values are outside their validity: still
  compared with them, then booted and reported (``ReferenceValuesOutsideValidity``) or held
  (``rim-expired``).

Severity follows the CVSS v3.1/v4.0 qualitative rating scale, the scores SAFE reports carry:
``none`` 0.0, ``low`` 0.1–3.9, ``medium`` 4.0–6.9, ``high`` 7.0–8.9, ``critical`` 9.0–10.0.
``max_severity = "medium"`` refuses a review with an open finding of CVSS 7.0 or more;
``"none"`` refuses any open finding scoring above 0.0; ``"critical"`` only requires that a
review exists.

:meth:`PlatformTrust.to_json` / :meth:`PlatformTrust.from_json` are the persisted form (keys as
base64 DER; strict: unknown or missing members, wrong types and keys that do not load raise
``ConfigError``). :meth:`PlatformTrust.load_toml` reads an operator's ``platform.toml``, where
keys are given by file path, relative to the file::

    platform = "pkg:platform/acme/node-1"   # the PFM's platform id
    healthy_boots = 3
    expired_manifest = "report"             # or "refuse" (module docs)

    [vendor]
    ecc = ["vendor-ecc-0.pub.pem"]          # ECDSA P-384 public keys, descriptor order
    pqc = ["vendor-mldsa-0.pub.pem"]        # ML-DSA-87 public keys, descriptor order

    [transparency]
    service_keys = ["service-keys.cbor"]    # COSE Key Sets (/.well-known/scitt-keys) or PEM;
                                            # files or folders (*.cbor, *.pem)
    service_issuer = "https://ts.example"   # optional: the receipts' iss must be this

    [issuers]                               # component -> statement issuers allowed
    bmc = ["https://vendor.example"]
    pfm = ["https://vendor.example"]

    [safe.bmc]                              # optional, per component
    providers = ["review-providers"]        # SAFE review-provider keys: files or folders
    max_severity = "medium"                 # none | low | medium | high | critical

    [witnesses]                             # optional: every logged statement witnessed
    log_keys = ["log.example/ts+1a2b3c4d+A…"]   # the log's checkpoint keys (C2SP vkeys)
    keys = ["witness.example/w1+1f2e3d4c+BA…", "witness.example/w2+5a6b7c8d+BA…"]
    quorum = 2                              # distinct witnesses (default: all of them)

With ``[witnesses]`` (:class:`PlatformWitnesses`) a receipt alone no longer puts a statement
on the log for this platform: each logged statement an update relies on (its manifest
statement, the PFM's, the CoRIMs it ships, an accepting SAFE review) must come as a
*witnessed statement* (``ironroot statement witness``): the Transparent Statement, a
checkpoint of the log signed by one of ``log_keys`` and cosigned by ``quorum`` distinct
trusted witnesses, and the consistency proof from the receipt's tree to it. A log that
showed this platform a fork (a release nobody else sees) would need the witnesses to cosign
it.

Every file must load: one bad key file is a ``ConfigError`` naming it (trust is never
silently narrowed or widened).
"""

from __future__ import annotations

import base64
import binascii
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final

from ironroot._fileio import read_config, warn_if_trust_writable
from ironroot.cose import decode_key_set
from ironroot.crypto import Algorithm, PublicKey, Verifier
from ironroot.errors import ConfigError, IronrootError
from ironroot.firmware import MAX_ECC_KEYS, MAX_PQC_KEYS, key_descriptor_hash
from ironroot.log import NoteVerifier
from ironroot.safe import ProviderKey, ProviderKeys, Review
from ironroot.witness import WitnessPolicy

__all__ = ["SEVERITIES", "PlatformTrust", "PlatformWitnesses", "SafeRequirement"]

SEVERITIES: Final = ("none", "low", "medium", "high", "critical")
"""The CVSS qualitative ratings, lowest first."""
_EXPIRED_MANIFEST: Final = ("report", "refuse")
"""The values of ``PlatformTrust.expired_manifest`` (module docs)."""

# An open finding at or above this CVSS score is above the named severity.
_ABOVE: Final[Mapping[str, float | None]] = MappingProxyType(
    {"none": 0.1, "low": 4.0, "medium": 7.0, "high": 9.0, "critical": None}
)
_FORMAT: Final = "ironroot-platform-trust/1"
_MAX_FILE: Final = 1024 * 1024
_MAX_HEALTHY_BOOTS: Final = 1000
_SERVICE_KEY_SUFFIXES: Final = frozenset((".cbor", ".pem"))
_PROVIDER_SUFFIXES: Final = frozenset((".pem", ".pub", ".crt", ".cer", ".der", ".key"))


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(value: object, what: str) -> bytes:
    if not isinstance(value, str):
        raise ConfigError(f"{what} is base64 text")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ConfigError(f"{what} is not valid base64") from exc


def _public_key(der: object, algorithm: Algorithm, what: str) -> PublicKey:
    if not isinstance(der, bytes) or not der:
        raise ConfigError(f"{what} is a SubjectPublicKeyInfo (DER bytes)")
    try:
        key = PublicKey.from_der(der)
    except IronrootError as exc:
        raise ConfigError(f"{what}: {exc.detail}") from exc
    if key.algorithm is not algorithm:
        raise ConfigError(f"{what} is a {key.algorithm.label} key, not {algorithm.label}")
    return key


def _members(doc: object, required: set[str], optional: set[str], what: str) -> dict[str, Any]:
    if not isinstance(doc, dict):
        raise ConfigError(f"{what} is an object")
    missing = required - set(doc)
    if missing:
        raise ConfigError(f"{what} lacks {sorted(missing)[0]!r}")
    unknown = set(doc) - required - optional
    if unknown:
        raise ConfigError(f"{what} has an unknown member {sorted(unknown)[0]!r}")
    return doc


def _name(value: object, what: str) -> str:
    if not isinstance(value, str) or not value or len(value) > 256:
        raise ConfigError(f"{what} is text of 1 to 256 characters")
    return value


def _names(value: object, what: str) -> frozenset[str]:
    if not isinstance(value, list | tuple | frozenset | set):
        raise ConfigError(f"{what} is a list of names")
    names = [_name(v, what) for v in value]
    if len(set(names)) != len(names):
        raise ConfigError(f"{what} lists a name twice")
    return frozenset(names)


def _instant(value: object, what: str) -> datetime:
    if not isinstance(value, str):
        raise ConfigError(f"{what} is an ISO 8601 time")
    try:
        when = datetime.fromisoformat(value)
    except ValueError as exc:
        raise ConfigError(f"{what} is not an ISO 8601 time") from exc
    if when.utcoffset() is None:
        raise ConfigError(f"{what} names no time zone")
    return when


def _periods(value: object) -> list[tuple[datetime, datetime]]:
    """A review provider's certificate validity periods (``None``: a bare key, no period)."""
    if value is None:
        return []
    what = "a review provider's validity"
    if not isinstance(value, list) or not value:
        raise ConfigError(f"{what} is a non-empty list of [not-before, not-after]")
    out = []
    for item in value:
        if not isinstance(item, list) or len(item) != 2:
            raise ConfigError(f"{what} is a list of [not-before, not-after]")
        out.append((_instant(item[0], what), _instant(item[1], what)))
    return out


@dataclass(frozen=True, slots=True)
class SafeRequirement:
    """A component's firmware needs an OCP SAFE review on the log.

    ``providers``: the review providers whose SFR signature counts (an empty store accepts no
    review). ``max_severity``: the highest severity an open finding may have (module docs).
    """

    providers: ProviderKeys
    max_severity: str = "none"

    def __post_init__(self) -> None:
        if not isinstance(self.providers, ProviderKeys):
            raise ConfigError("a SAFE requirement's providers are a ProviderKeys store")
        if self.max_severity not in SEVERITIES:
            raise ConfigError(f"max_severity is one of {', '.join(SEVERITIES)}")

    @property
    def refused_at(self) -> float | None:
        """The CVSS score from which an open finding refuses; ``None``: none refuses."""
        return _ABOVE[self.max_severity]

    def accepts(self, review: Review) -> bool:
        """Whether ``review`` leaves no open finding above ``max_severity``."""
        threshold = self.refused_at
        return threshold is None or not review.has_issue_at_or_above(threshold)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SafeRequirement) and other.to_json() == self.to_json()

    def __hash__(self) -> int:
        return hash(self.max_severity)

    def to_json(self) -> dict[str, Any]:
        """``{"max_severity", "providers": [{"key": base64 DER, "names": [...],
        "identities": [...], ["validity": [[not-before, not-after], ...]]}]}``: each key with
        every ``kid`` name that resolves to it, so look-ups are the same once loaded, the
        provider names it signs for (an SFR's ``srp``: a certificate's CN finds the key but
        is not one of them, so a round trip does not make it one), and the validity periods
        (ISO 8601) of the provider certificates it came from, so that an expired certificate
        stays refused once loaded."""
        by_key: dict[PublicKey, list[str]] = {entry.key: [] for entry in self.providers}
        for name in self.providers.names():
            by_key.setdefault(self.providers.lookup(name), []).append(name)
        entries: list[dict[str, Any]] = []
        for key, names in by_key.items():
            entry: dict[str, Any] = {
                "key": _b64(key.to_der()),
                "names": sorted(names),
                "identities": sorted(self.providers.identities(key)),
            }
            periods = self.providers.validity(key)
            if periods:
                entry["validity"] = [[a.isoformat(), b.isoformat()] for a, b in periods]
            entries.append(entry)
        return {
            "max_severity": self.max_severity,
            "providers": sorted(entries, key=lambda entry: str(entry["key"])),
        }

    @classmethod
    def from_json(cls, doc: object) -> SafeRequirement:
        value = _members(doc, {"max_severity", "providers"}, set(), "a SAFE requirement")
        entries = value["providers"]
        if not isinstance(entries, list):
            raise ConfigError("a SAFE requirement's providers are a list")
        keys = []
        for entry in entries:
            item = _members(
                entry, {"key", "names"}, {"validity", "identities"}, "a review provider"
            )
            der = _unb64(item["key"], "a review provider key")
            try:
                key = PublicKey.from_der(der)
            except IronrootError as exc:
                raise ConfigError(f"a review provider key: {exc.detail}") from exc
            names = _names(item["names"], "a review provider's names")
            # the provider names the key signs for (an SFR's srp), which are not all the
            # names that find it (a certificate's CN finds it, never signs for it); a trust
            # persisted before they were kept: its names, as then
            identities = (
                _names(item["identities"], "a review provider's identities")
                if "identities" in item
                else names
            )
            periods = _periods(item.get("validity"))
            keys += [
                ProviderKey(key, names, identities=identities, not_before=a, not_after=b)
                for a, b in periods
            ]
            if not periods:
                keys.append(ProviderKey(key, names, identities=identities))
        severity = value["max_severity"]
        if not isinstance(severity, str):
            raise ConfigError("max_severity is text")
        return cls(ProviderKeys(keys), severity)


def _vkeys(value: object, what: str, name: str) -> list[str]:
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{what} {name} is a non-empty list of C2SP vkeys")
    return value


@dataclass(frozen=True, slots=True)
class PlatformWitnesses:
    """Logged statements count only when witnessed (module docs): the log's checkpoint keys
    (``log_keys``, one name: the log's origin) and the witnesses' quorum (``policy``)."""

    log_keys: tuple[NoteVerifier, ...]
    policy: WitnessPolicy

    def __post_init__(self) -> None:
        keys = self.log_keys
        if (
            not isinstance(keys, tuple)
            or not keys
            or not all(isinstance(k, NoteVerifier) for k in keys)
        ):
            raise ConfigError("the log's checkpoint keys are a non-empty tuple of NoteVerifier")
        if len({k.name for k in keys}) != 1:
            raise ConfigError("the log's checkpoint keys name one log (its origin)")
        if len(set(keys)) != len(keys):
            raise ConfigError("the log's checkpoint keys list one key twice")
        if not isinstance(self.policy, WitnessPolicy):
            raise ConfigError("the witnesses are a WitnessPolicy")
        # A log's ML-DSA-44 vkey parses as a cosigner's too, and a key of the log's under
        # another name is the log's to cosign with: either way the log would witness itself.
        own = {k.public_key.raw_bytes() for k in keys}
        for witness in self.policy.witnesses:
            if witness.public_key.raw_bytes() in own:
                raise ConfigError(
                    f"a witness key is the log's own checkpoint key ({witness.name}): the log "
                    "cannot witness itself"
                )

    @property
    def origin(self) -> str:
        """The log's origin: the name its checkpoint keys carry."""
        return self.log_keys[0].name

    @classmethod
    def from_vkeys(
        cls, log_keys: object, keys: object, quorum: object, what: str
    ) -> PlatformWitnesses:
        """From vkey strings (``what`` names the setting in errors)."""
        log_vkeys, witness_vkeys = _vkeys(log_keys, what, "log_keys"), _vkeys(keys, what, "keys")
        if quorum is not None and (isinstance(quorum, bool) or not isinstance(quorum, int)):
            raise ConfigError(f"{what} quorum is an integer")
        try:
            log = tuple(NoteVerifier.from_vkey(v) for v in log_vkeys)
        except IronrootError as exc:
            raise ConfigError(f"{what} a log key: {exc.detail}") from exc
        try:
            policy = WitnessPolicy.from_vkeys(witness_vkeys, quorum)
        except IronrootError as exc:
            raise ConfigError(f"{what} {exc.detail}") from exc
        try:
            return cls(log, policy)
        except ConfigError as exc:
            raise ConfigError(f"{what} {exc.detail}") from exc

    def to_json(self) -> dict[str, Any]:
        return {
            "log_keys": [k.vkey for k in self.log_keys],
            "keys": [w.vkey for w in self.policy.witnesses],
            "quorum": self.policy.quorum,
        }

    @classmethod
    def from_json(cls, doc: object) -> PlatformWitnesses:
        value = _members(doc, {"log_keys", "keys", "quorum"}, set(), "the platform's witnesses")
        return cls.from_vkeys(
            value["log_keys"], value["keys"], value["quorum"], "the platform's witnesses:"
        )


def _service_keys(value: Mapping[bytes, Verifier]) -> Mapping[bytes, PublicKey]:
    if not isinstance(value, Mapping) or not value:
        raise ConfigError("a platform trusts at least one transparency service key")
    out: dict[bytes, PublicKey] = {}
    for kid, key in value.items():
        if not isinstance(key, PublicKey):
            raise ConfigError("a transparency service key is a public key")
        if kid != key.kid:
            raise ConfigError("a transparency service key's kid is not its RFC 9679 thumbprint")
        out[kid] = key
    return MappingProxyType(out)


@dataclass(frozen=True, slots=True)
class PlatformTrust:
    """The trust anchors and policy of a platform's updates (module docs)."""

    platform: str
    vendor_ecc: tuple[bytes, ...]
    vendor_pqc: tuple[bytes, ...]
    service_keys: Mapping[bytes, Verifier]
    issuers: Mapping[str, frozenset[str]]
    safe: Mapping[str, SafeRequirement] = field(default_factory=dict)
    healthy_boots: int = 3
    expired_manifest: str = "report"
    witnesses: PlatformWitnesses | None = None
    service_issuer: str | None = None
    _ecc: tuple[PublicKey, ...] = field(init=False, repr=False, compare=False)
    _pqc: tuple[PublicKey, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        _name(self.platform, "the platform id")
        for keys, algorithm, limit, name in (
            (self.vendor_ecc, Algorithm.ES384, MAX_ECC_KEYS, "vendor_ecc"),
            (self.vendor_pqc, Algorithm.ML_DSA_87, MAX_PQC_KEYS, "vendor_pqc"),
        ):
            if not isinstance(keys, tuple) or not 1 <= len(keys) <= limit:
                raise ConfigError(f"{name} is a tuple of 1 to {limit} public keys")
            parsed = tuple(_public_key(k, algorithm, f"{name}[{i}]") for i, k in enumerate(keys))
            if len(set(parsed)) != len(parsed):
                raise ConfigError(f"{name} lists one key twice")
            object.__setattr__(self, "_ecc" if name == "vendor_ecc" else "_pqc", parsed)
        object.__setattr__(self, "service_keys", _service_keys(self.service_keys))
        if not isinstance(self.issuers, Mapping):
            raise ConfigError("issuers map components to issuer names")
        issuers = {
            _name(c, "a component name"): _names(v, f"the issuers of {c}")
            for c, v in self.issuers.items()
        }
        object.__setattr__(self, "issuers", MappingProxyType(issuers))
        if not isinstance(self.safe, Mapping):
            raise ConfigError("safe maps components to SAFE requirements")
        for component, requirement in self.safe.items():
            _name(component, "a component name")
            if not isinstance(requirement, SafeRequirement):
                raise ConfigError(f"the SAFE requirement of {component} is a SafeRequirement")
        object.__setattr__(self, "safe", MappingProxyType(dict(self.safe)))
        boots = self.healthy_boots
        if isinstance(boots, bool) or not isinstance(boots, int):
            raise ConfigError("healthy_boots is an integer")
        if not 1 <= boots <= _MAX_HEALTHY_BOOTS:
            raise ConfigError(f"healthy_boots is 1 to {_MAX_HEALTHY_BOOTS}")
        if self.expired_manifest not in _EXPIRED_MANIFEST:
            raise ConfigError('expired_manifest is "report" or "refuse"')
        if self.witnesses is not None and not isinstance(self.witnesses, PlatformWitnesses):
            raise ConfigError("witnesses is a PlatformWitnesses, or None")
        if self.service_issuer is not None:
            _name(self.service_issuer, "the transparency service's issuer")

    # --- what the checks use ----------------------------------------------------------------

    @property
    def ecc_keys(self) -> tuple[PublicKey, ...]:
        """The vendor's ECDSA P-384 keys, descriptor order."""
        return self._ecc

    @property
    def pqc_keys(self) -> tuple[PublicKey, ...]:
        """The vendor's ML-DSA-87 keys, descriptor order."""
        return self._pqc

    @property
    def vendor_key_hash(self) -> bytes:
        """The vendor key descriptor hash these keys make (the RoT's fuses must hold it)."""
        return key_descriptor_hash(self._ecc, self._pqc, "mldsa")

    def for_kept_evidence(self) -> PlatformTrust:
        """This trust without its witnesses: what a node's kept evidence (the Transparent
        Statements an update came with) is checked again under. The witnessing was checked
        when the node decided the update, and is not kept with them."""
        return replace(self, witnesses=None)

    def issuers_of(self, component: str) -> frozenset[str]:
        """The issuers allowed to publish ``component``'s firmware; empty: none."""
        return self.issuers.get(component, frozenset())

    # --- persisted form ---------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        return {
            "format": _FORMAT,
            "platform": self.platform,
            "vendor_ecc": [_b64(k) for k in self.vendor_ecc],
            "vendor_pqc": [_b64(k) for k in self.vendor_pqc],
            "service_keys": [
                _b64(key.to_der())
                for key in self.service_keys.values()
                if isinstance(key, PublicKey)
            ],
            "issuers": {c: sorted(v) for c, v in sorted(self.issuers.items())},
            "safe": {c: r.to_json() for c, r in sorted(self.safe.items())},
            "healthy_boots": self.healthy_boots,
            "expired_manifest": self.expired_manifest,
            **({"witnesses": self.witnesses.to_json()} if self.witnesses is not None else {}),
            **({"service_issuer": self.service_issuer} if self.service_issuer is not None else {}),
        }

    @classmethod
    def from_json(cls, doc: object) -> PlatformTrust:
        """The trust :meth:`to_json` wrote; ``ConfigError`` for anything else."""
        keys = {"format", "platform", "vendor_ecc", "vendor_pqc", "service_keys", "issuers"}
        value = _members(
            doc,
            keys | {"safe", "healthy_boots"},
            {"expired_manifest", "witnesses", "service_issuer"},
            "the platform trust",
        )
        if value["format"] != _FORMAT:
            raise ConfigError(f"unknown platform trust format {value['format']!r}")
        lists = {}
        for name in ("vendor_ecc", "vendor_pqc", "service_keys"):
            items = value[name]
            if not isinstance(items, list):
                raise ConfigError(f"{name} is a list of base64 keys")
            lists[name] = tuple(_unb64(item, f"a key of {name}") for item in items)
        service: dict[bytes, Verifier] = {}
        for der in lists["service_keys"]:
            try:
                key = PublicKey.from_der(der)
            except IronrootError as exc:
                raise ConfigError(f"a transparency service key: {exc.detail}") from exc
            if key.kid in service:
                raise ConfigError("a transparency service key is listed twice")
            service[key.kid] = key
        issuers = value["issuers"]
        safe = value["safe"]
        if not isinstance(issuers, dict) or not isinstance(safe, dict):
            raise ConfigError("issuers and safe are objects keyed by component")
        return cls(
            platform=value["platform"],
            vendor_ecc=lists["vendor_ecc"],
            vendor_pqc=lists["vendor_pqc"],
            service_keys=service,
            issuers={c: _names(v, f"the issuers of {c}") for c, v in issuers.items()},
            safe={c: SafeRequirement.from_json(r) for c, r in safe.items()},
            healthy_boots=value["healthy_boots"],
            expired_manifest=value.get("expired_manifest", "report"),
            witnesses=(
                PlatformWitnesses.from_json(value["witnesses"]) if "witnesses" in value else None
            ),
            service_issuer=value.get("service_issuer"),
        )

    # --- the operator's file ----------------------------------------------------------------

    @classmethod
    def load_toml(cls, path: str | os.PathLike[str]) -> PlatformTrust:
        """Read ``platform.toml`` (format in the module docs); paths are relative to it."""
        file = Path(path)
        try:
            document = tomllib.loads(read_config(file, _MAX_FILE).decode("utf-8"))
        except (ValueError, RecursionError) as exc:  # TOML, UTF-8, int() of 4,301+ digits
            raise ConfigError(f"{file} is not valid TOML: {exc}") from exc
        warn_if_trust_writable(file)
        return cls.from_toml(document, file.parent, str(file))

    @classmethod
    def from_toml(cls, document: Mapping[str, Any], base: Path, where: str) -> PlatformTrust:
        """The trust a parsed ``platform.toml`` document gives (format in the module docs),
        key files relative to ``base``; ``where`` names the document in errors. For files
        that embed the platform trust among other settings (``ironroot.audit``'s trust)."""
        top = _members(
            dict(document),
            {"platform", "vendor", "transparency", "issuers"},
            {"healthy_boots", "safe", "expired_manifest", "witnesses"},
            where,
        )
        vendor = _members(top["vendor"], {"ecc", "pqc"}, set(), "[vendor]")
        transparency = _members(
            top["transparency"], {"service_keys"}, {"service_issuer"}, "[transparency]"
        )
        service: dict[bytes, Verifier] = {}
        for key_file in _files(
            base, transparency["service_keys"], _SERVICE_KEY_SUFFIXES, "[transparency] service_keys"
        ):
            for kid, key in _service_key_file(key_file).items():
                service[kid] = key
        issuers = top["issuers"]
        if not isinstance(issuers, dict):
            raise ConfigError("[issuers] maps components to lists of issuers")
        witnesses = _witnesses(top["witnesses"], where) if "witnesses" in top else None
        safe_table = top.get("safe", {})
        if not isinstance(safe_table, dict):
            raise ConfigError("[safe.COMPONENT] tables give SAFE requirements")
        safe = {}
        for component, table in safe_table.items():
            where = f"[safe.{component}]"
            entry = _members(table, {"providers"}, {"max_severity"}, where)
            files = _files(base, entry["providers"], _PROVIDER_SUFFIXES, where)
            try:
                providers = ProviderKeys(ProviderKeys.read_key_file(p) for p in files)
            except (IronrootError, OSError) as exc:
                raise ConfigError(f"{where}: a review provider key does not load") from exc
            severity = entry.get("max_severity", "none")
            if not isinstance(severity, str):
                raise ConfigError(f"{where}: max_severity is text")
            safe[component] = SafeRequirement(providers, severity.lower())
        return cls(
            platform=top["platform"],
            vendor_ecc=tuple(
                _key_file(p, Algorithm.ES384) for p in _paths(base, vendor["ecc"], "[vendor] ecc")
            ),
            vendor_pqc=tuple(
                _key_file(p, Algorithm.ML_DSA_87)
                for p in _paths(base, vendor["pqc"], "[vendor] pqc")
            ),
            service_keys=service,
            issuers={c: _names(v, f"[issuers] {c}") for c, v in issuers.items()},
            safe=safe,
            healthy_boots=top.get("healthy_boots", 3),
            expired_manifest=top.get("expired_manifest", "report"),
            witnesses=witnesses,
            service_issuer=transparency.get("service_issuer"),
        )


def _witnesses(table: object, where: str) -> PlatformWitnesses:
    """``[witnesses]``: the log's checkpoint keys, the witnesses' vkeys and the quorum."""
    entry = _members(table, {"log_keys", "keys"}, {"quorum"}, f"{where}: [witnesses]")
    return PlatformWitnesses.from_vkeys(
        entry["log_keys"], entry["keys"], entry.get("quorum"), f"{where}: [witnesses]"
    )


def _paths(base: Path, value: object, what: str) -> list[Path]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{what} is a non-empty list of paths")
    return [base / v for v in value]


def _files(base: Path, value: object, suffixes: frozenset[str], what: str) -> list[Path]:
    out: list[Path] = []
    for path in _paths(base, value, what):
        if path.is_dir():
            found = sorted(
                p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in suffixes
            )
            if not found:
                raise ConfigError(f"{path} holds no key file ({', '.join(sorted(suffixes))})")
            out.extend(found)
        elif path.is_file():
            out.append(path)
        else:
            raise ConfigError(f"{path} does not exist")
    return out


def _key_file(path: Path, algorithm: Algorithm) -> bytes:
    data = read_config(path, _MAX_FILE)
    try:
        key = PublicKey.from_pem(data)
    except IronrootError as exc:
        raise ConfigError(f"{path}: {exc.detail}") from exc
    return _public_key(key.to_der(), algorithm, str(path)).to_der()


def _service_key_file(path: Path) -> dict[bytes, PublicKey]:
    data = read_config(path, _MAX_FILE)
    try:
        if data[:1] and 0x80 <= data[0] <= 0x9F:  # a CBOR array: a COSE Key Set
            return decode_key_set(data)
        key = PublicKey.from_pem(data)
    except IronrootError as exc:
        raise ConfigError(f"{path}: {exc.detail}") from exc
    return {key.kid: key}
