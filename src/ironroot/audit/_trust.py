"""What an auditor trusts: :class:`AuditTrust`, read from a TOML trust file.

The trust file is a ``platform.toml`` (:class:`ironroot.platform.PlatformTrust`: the platform
id, the vendor's firmware keys, the transparency services' receipt keys, the issuers allowed
per component, the SAFE requirements) with what an audit adds, keys given by file path
relative to the file::

    platform = "pkg:platform/acme/node-7"

    [vendor]
    ecc = ["vendor-ecc-0.pub.pem"]          # firmware signing keys, descriptor order
    pqc = ["vendor-mldsa-0.pub.pem"]
    fused_hash = "5f1c…"                    # optional: the vendor key hash the RoT's fuses
                                            # must hold (default: the hash of the keys above)
    roots = ["vendor-ca"]                   # the vendor CA roots that issue IDevIDs (PEM
                                            # certificates: files or folders)

    [transparency]
    service_keys = ["service-keys.cbor"]    # receipt keys (COSE Key Sets or PEM)
    checkpoint_keys = ["transparency.example+1f2e3d4c+AU…"]   # C2SP note verifier keys

    [[transparency.logs]]                   # optional, one per service: pairs its receipt
    origin = "transparency.example"         # keys with its log (origin, checkpoint keys)
    checkpoint_keys = ["transparency.example+1f2e3d4c+AU…"]
    service_keys = ["service-keys.cbor"]

    [issuers]
    bmc = ["https://vendor.example"]
    pfm = ["https://vendor.example"]

    [safe.bmc]                              # optional: a SAFE review required, as platform.toml
    providers = ["review-providers"]
    max_severity = "medium"

    [verifier]                              # optional: the attestation verifiers whose EARs count
    keys = ["verifier.pub.pem"]

    [hsm]                                   # optional: HSM attestation keys (audit checkpoints)
    attestation_keys = ["hsm-attestation.pub.pem"]
    roots = ["hsm-vendor-root.pem"]         # the HSM vendor's roots (release statements)
    require_signed_records = true           # optional: every HSM audit record in a bundle
                                            # must be covered by a signed audit checkpoint
    require_node_binding = true             # optional: the HSM's attestation chain must tie
                                            # it to the node's RoT (a DPE child of it)

    [fleet]                                 # optional: the fleet CA whose credentials prove
    ca = "fleet-ca.pem"                     # which fleet node a bundle is about (one PEM
                                            # certificate); without it the node id is unproven

    [witnesses]                             # optional: require witness cosignatures
    keys = ["witness.example/w1+1f2e3d4c+BA…", "witness.example/w2+5a6b7c8d+BA…"]
    quorum = 2                              # k: distinct witnesses (default: all of them)
    log_keys = ["transparency.example+1f2e3d4c+AU…"]   # optional, as a platform.toml that
                                            # requires witnesses names them: checkpoint keys too

An empty set trusts nothing: with no ``[verifier]`` keys an EAR in a bundle does not verify;
without ``checkpoint_keys`` no checkpoint does; without ``[hsm] roots`` no release statement
does; without ``[fleet] ca`` the ``identity`` step is skipped, saying the node id is only the
bundle's word; a ``[witnesses]`` or ``[fleet]`` table written but left empty is a
``ConfigError`` rather than either of those. Every file must load (``ConfigError`` naming
it). ``[witnesses]`` names C2SP tlog-cosignature verifier keys (vkeys, Ed25519 or ML-DSA-44);
a witness is its name, so two keys of one name are one witness (either key's cosignature
counts for it, once). With ``[witnesses]`` every checkpoint in a bundle needs valid
cosignatures from ``quorum`` distinct witnesses (1 ≤ quorum ≤ the witnesses named).

Pairing (``[[transparency.logs]]``, :class:`TrustedLog`): without it a trust file lists the
receipt keys and the checkpoint keys apart, and a receipt signed by service A's key is
accepted as proven under a checkpoint of log B (whose operator could keep a tree of the same
entries, and show it to this auditor alone): A's own log is never asked. With it, a receipt
is proven only under a checkpoint of its own service's log (the entry's ``origin``, signed by
one of its ``checkpoint_keys``; ``UnknownIssuer`` ``receipt-log-mismatch`` otherwise). Once
any entry is written every receipt key and every checkpoint key the file trusts must be
paired: ``service_keys`` and ``checkpoint_keys`` directly under ``[transparency]`` may then
be left out (the entries' keys are the platform's), and a key given there that no entry
pairs is a ``ConfigError``, as are two entries of one origin or an entry without its three
settings. A file without entries keeps working, unpaired, and ``audit verify`` says so in
its report (:attr:`~ironroot.audit.AuditReport.caveats`).
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final

from ironroot._fileio import read_config, warn_if_trust_writable
from ironroot.cose import decode_key_set
from ironroot.crypto import PublicKey, Verifier
from ironroot.errors import ConfigError, IronrootError
from ironroot.log import NoteVerifier
from ironroot.platform import PlatformTrust
from ironroot.rot import parse_certificates
from ironroot.safe import ProviderKeys
from ironroot.witness import CosignatureVerifier

__all__ = ["AuditTrust", "TrustedLog"]

_MAX_FILE: Final = 1024 * 1024
_PEM_SUFFIXES: Final = frozenset((".pem", ".crt", ".cer", ".pub"))


def _check_roots(roots: tuple[bytes, ...], what: str) -> None:
    """``ConfigError`` naming ``what`` for a root certificate that does not parse."""
    for root in roots:
        try:
            parse_certificates(root)
        except IronrootError as exc:
            raise ConfigError(f"{what} does not parse: {exc.detail}") from exc


@dataclass(frozen=True, slots=True)
class TrustedLog:
    """One transparency service as an audit trusts it: its log's ``origin``, the
    ``checkpoint_keys`` that sign that log's checkpoints, and the ``receipt_kids`` (RFC 9679
    thumbprints) of the keys that sign its receipts. A receipt by one of these keys is
    proven only under a checkpoint of this origin signed by one of these checkpoint keys."""

    origin: str
    checkpoint_keys: tuple[NoteVerifier, ...]
    receipt_kids: frozenset[bytes]

    def __post_init__(self) -> None:
        if not isinstance(self.origin, str) or not 0 < len(self.origin) <= 256:
            raise ConfigError("a trusted log's origin is text")
        if (
            not isinstance(self.checkpoint_keys, tuple)
            or not self.checkpoint_keys
            or not all(isinstance(k, NoteVerifier) for k in self.checkpoint_keys)
        ):
            raise ConfigError(f"log {self.origin} names its checkpoint keys (note verifiers)")
        if (
            not isinstance(self.receipt_kids, frozenset)
            or not self.receipt_kids
            or not all(isinstance(k, bytes) and k for k in self.receipt_kids)
        ):
            raise ConfigError(f"log {self.origin} names its service's receipt keys (kids)")


def _pair(trust: AuditTrust) -> None:
    """Check the logs' pairing against the rest of ``trust`` (module docs) and complete its
    checkpoint keys with the logs' own."""
    logs = trust.logs
    if not isinstance(logs, tuple) or not all(isinstance(log, TrustedLog) for log in logs):
        raise ConfigError("the trusted logs are a tuple of TrustedLog")
    if not logs:
        return
    origins = [log.origin for log in logs]
    for origin in origins:
        if origins.count(origin) > 1:
            raise ConfigError(f"two [[transparency.logs]] entries are for origin {origin}")
    paired = {key for log in logs for key in log.checkpoint_keys}
    for key in trust.checkpoint_keys:
        if key not in paired:
            raise ConfigError(
                f"checkpoint key {key.vkey[:64]} is paired with no log ([[transparency.logs]])"
            )
    service = trust.platform.service_keys
    for log in logs:
        for kid in sorted(log.receipt_kids):
            if kid not in service:
                raise ConfigError(
                    f"log {log.origin} names key {kid.hex()[:16]}…, not a receipt key the "
                    "trust holds"
                )
    kids = {kid for log in logs for kid in log.receipt_kids}
    for kid in sorted(service):
        if kid not in kids:
            raise ConfigError(
                f"receipt key {kid.hex()[:16]}… is paired with no log ([[transparency.logs]])"
            )
    keys = (*trust.checkpoint_keys, *(k for log in logs for k in log.checkpoint_keys))
    object.__setattr__(trust, "checkpoint_keys", tuple(dict.fromkeys(keys)))


@dataclass(frozen=True, slots=True)
class AuditTrust:
    """The trust anchors an audit bundle is verified against (module docs).

    ``platform``: the platform trust (vendor firmware keys, receipt keys, issuers, SAFE);
    ``vendor_roots``: DER vendor CA certificates that issue IDevIDs (the quote's chains end
    there); ``checkpoint_keys``: the logs' C2SP note verifier keys; ``verifier_keys``: EAR
    signing keys by kid; ``fused_vendor_key_hash``: what the RoT's vendor key hash fuse must
    hold (default: the platform trust's keys' hash); ``hsm_attestation_keys``: the keys HSM
    audit checkpoints are signed with; ``hsm_roots``: DER certificates of the HSM vendor's
    roots, which the release statements' chains must reach; ``witnesses`` and
    ``witness_quorum``: the witnesses' cosignature keys and how many distinct witnesses (by
    name) must have cosigned every checkpoint (no witnesses and quorum 0: none required);
    ``fleet_ca``: the DER certificate of the fleet CA whose credentials name the node (``None``:
    the node id a bundle claims is not checked against anything trusted);
    ``require_signed_hsm_records``: every HSM audit record a bundle holds must be covered by
    a signed audit checkpoint, and a bundle must hold the HSM's audit chain (otherwise the
    records after the last checkpoint are only reported as what nothing signed vouches for);
    ``logs``: each service's receipt keys paired with its log (:class:`TrustedLog`; empty:
    unpaired, a receipt is accepted under any trusted log's checkpoint, and reports say so);
    ``require_hsm_node_binding``: a bundle's HSM audit chain must be tied to the node by the
    HSM's attestation chain (``ironroot.audit._check_hsm``, step ``hsm``; otherwise an unbound
    HSM is only reported as such).
    """

    platform: PlatformTrust
    vendor_roots: tuple[bytes, ...]
    checkpoint_keys: tuple[NoteVerifier, ...] = ()
    verifier_keys: Mapping[bytes, Verifier] = field(default_factory=dict)
    fused_vendor_key_hash: bytes = b""
    hsm_attestation_keys: tuple[PublicKey, ...] = ()
    witnesses: tuple[CosignatureVerifier, ...] = ()
    witness_quorum: int = 0
    hsm_roots: tuple[bytes, ...] = ()
    fleet_ca: bytes | None = None
    require_signed_hsm_records: bool = False
    logs: tuple[TrustedLog, ...] = ()
    require_hsm_node_binding: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.platform, PlatformTrust):
            raise ConfigError("an audit trust holds a PlatformTrust")
        if not self.vendor_roots or not all(isinstance(r, bytes) for r in self.vendor_roots):
            raise ConfigError("an audit trust names at least one vendor CA root (DER)")
        _check_roots(self.vendor_roots, "a vendor CA root")
        if not isinstance(self.hsm_roots, tuple) or not all(
            isinstance(r, bytes) for r in self.hsm_roots
        ):
            raise ConfigError("HSM vendor roots are a tuple of DER certificates")
        _check_roots(self.hsm_roots, "an HSM vendor root")
        if self.fleet_ca is not None:
            if not isinstance(self.fleet_ca, bytes):
                raise ConfigError("the fleet CA is a DER certificate")
            try:
                (ca,) = parse_certificates(self.fleet_ca)
            except (IronrootError, ValueError) as exc:
                raise ConfigError("the fleet CA is one DER certificate") from exc
            object.__setattr__(self, "fleet_ca", ca.der)
        if not all(isinstance(k, NoteVerifier) for k in self.checkpoint_keys):
            raise ConfigError("checkpoint keys are C2SP note verifiers")
        _pair(self)
        fused = self.fused_vendor_key_hash or self.platform.vendor_key_hash
        if len(fused) != 48:
            raise ConfigError("the fused vendor key hash is 48 bytes (SHA-384)")
        object.__setattr__(self, "fused_vendor_key_hash", fused)
        if not isinstance(self.witnesses, tuple) or not all(
            isinstance(w, CosignatureVerifier) for w in self.witnesses
        ):
            raise ConfigError("witnesses are a tuple of cosignature verifiers")
        if len({(w.name, w.key_id) for w in self.witnesses}) != len(self.witnesses):
            raise ConfigError("the trust names one witness key twice")
        # A log's ML-DSA-44 vkey parses as a cosigner's too: the log would witness itself.
        logs = {k.public_key.raw_bytes() for k in self.checkpoint_keys}
        for witness in self.witnesses:
            if witness.public_key.raw_bytes() in logs:
                raise ConfigError(
                    f"a witness key is a checkpoint key ({witness.name}): a log cannot "
                    "witness itself"
                )
        named = len({w.name for w in self.witnesses})
        quorum = self.witness_quorum
        if isinstance(quorum, bool) or not isinstance(quorum, int):
            raise ConfigError("the witness quorum is an integer")
        if named == 0 and quorum != 0:
            raise ConfigError("a witness quorum needs witnesses")
        if named and not 1 <= quorum <= named:
            raise ConfigError(
                f"the witness quorum is between 1 and {named} (the distinct witnesses named)"
            )
        if not isinstance(self.require_signed_hsm_records, bool):
            raise ConfigError("require_signed_hsm_records is true or false")
        if not isinstance(self.require_hsm_node_binding, bool):
            raise ConfigError("require_hsm_node_binding is true or false")
        object.__setattr__(self, "verifier_keys", MappingProxyType(dict(self.verifier_keys)))

    @property
    def review_providers(self) -> ProviderKeys:
        """Every SAFE review provider the platform trust names, over all components."""
        return ProviderKeys(entry for r in self.platform.safe.values() for entry in r.providers)

    @classmethod
    def load_toml(cls, path: str | os.PathLike[str]) -> AuditTrust:
        """Read a trust file (module docs); paths in it are relative to it."""
        file = Path(path)
        try:
            document = tomllib.loads(read_config(file, _MAX_FILE).decode("utf-8"))
        except (ValueError, RecursionError) as exc:  # TOML, UTF-8, int() of 4,301+ digits
            raise ConfigError(f"{file} is not valid TOML: {exc}") from exc
        warn_if_trust_writable(file)
        base = file.parent
        rest: dict[str, Any] = dict(document)
        # An optional table written but left empty requires nothing: say so, never read it
        # as "no cosignature required" or "the node id unchecked".
        for name, what in (("witnesses", "witness: give keys"), ("fleet", "fleet CA: give ca")):
            if rest.get(name) == {}:
                raise ConfigError(f"{file}: [{name}] names no {what} (or leave it out)")
        vendor = _table(rest.get("vendor"), "vendor")
        transparency = _table(rest.get("transparency"), "transparency")
        verifier = _table(rest.pop("verifier", {}), "verifier", {"keys"})
        hsm = _table(
            rest.pop("hsm", {}),
            "hsm",
            {"attestation_keys", "roots", "require_signed_records", "require_node_binding"},
        )
        require_signed = hsm.get("require_signed_records", False)
        require_bound = hsm.get("require_node_binding", False)
        if not isinstance(require_signed, bool):
            raise ConfigError(f"{file}: [hsm] require_signed_records is true or false")
        if not isinstance(require_bound, bool):
            raise ConfigError(f"{file}: [hsm] require_node_binding is true or false")
        witnessing = _table(rest.pop("witnesses", {}), "witnesses", {"keys", "quorum", "log_keys"})
        # A platform.toml whose updates require witnesses names the log's checkpoint keys
        # there: they sign the checkpoints an audit checks too.
        log_value = witnessing.pop("log_keys", [])
        fleet = _table(rest.pop("fleet", {}), "fleet", {"ca"})
        roots_value = vendor.pop("roots", None)
        fused_value = vendor.pop("fused_hash", None)
        checkpoint_value = transparency.pop("checkpoint_keys", [])
        logs_value = transparency.pop("logs", [])
        if not isinstance(logs_value, list) or not all(isinstance(e, dict) for e in logs_value):
            raise ConfigError(f"{file}: [[transparency.logs]] is an array of tables")
        entries = [_log_entry(e, file) for e in logs_value]
        if entries and "service_keys" not in transparency:  # the entries' keys are the platform's
            transparency["service_keys"] = list(dict.fromkeys(p for e in entries for p in e[2]))
        rest["vendor"], rest["transparency"] = vendor, transparency
        platform = PlatformTrust.from_toml(rest, base, str(file))
        if roots_value is None:
            raise ConfigError(f"{file}: [vendor] roots names the vendor CA certificates")
        roots = tuple(
            cert.der
            for p in _files(base, roots_value, "[vendor] roots")
            for cert in _certificates(p)
        )
        fused = b""
        if fused_value is not None:
            try:  # text only: an integer of 96 digits is not a hash
                fused = bytes.fromhex(fused_value if isinstance(fused_value, str) else "-")
            except ValueError as exc:
                raise ConfigError(f"{file}: [vendor] fused_hash is not hex") from exc
        if not isinstance(checkpoint_value, list) or not all(
            isinstance(v, str) for v in checkpoint_value
        ):
            raise ConfigError(f"{file}: [transparency] checkpoint_keys is a list of vkeys")
        if not isinstance(log_value, list) or not all(isinstance(v, str) for v in log_value):
            raise ConfigError(f"{file}: [witnesses] log_keys is a list of vkeys")
        try:
            checkpoint_keys = tuple(
                dict.fromkeys(NoteVerifier.from_vkey(v) for v in [*checkpoint_value, *log_value])
            )
        except IronrootError as exc:
            raise ConfigError(f"{file}: a checkpoint key: {exc.detail}") from exc
        verifier_keys = {
            key.kid: key
            for p in _files(base, verifier.get("keys", []), "[verifier] keys", empty=True)
            for key in (_public_key(p),)
        }
        hsm_keys = tuple(
            _public_key(p)
            for p in _files(base, hsm.get("attestation_keys", []), "[hsm] keys", empty=True)
        )
        hsm_roots = tuple(
            cert.der
            for p in _files(base, hsm.get("roots", []), "[hsm] roots", empty=True)
            for cert in _certificates(p)
        )
        witnesses, quorum = _witnesses(witnessing, file)
        logs = tuple(
            TrustedLog(
                origin,
                keys,
                frozenset(
                    kid
                    for p in _files(base, paths, f"[[transparency.logs]] {origin}: service_keys")
                    for kid in _service_key_file(p)
                ),
            )
            for origin, keys, paths in entries
        )
        fleet_ca = None
        if "ca" in fleet:
            if not isinstance(fleet["ca"], str):
                raise ConfigError(f"{file}: [fleet] ca is the path of the fleet CA certificate")
            found = [
                c.der for p in _files(base, fleet["ca"], "[fleet] ca") for c in _certificates(p)
            ]
            if len(found) != 1:
                raise ConfigError(f"{file}: [fleet] ca names exactly one certificate")
            fleet_ca = found[0]
        return cls(
            platform=platform,
            vendor_roots=roots,
            checkpoint_keys=checkpoint_keys,
            verifier_keys=verifier_keys,
            fused_vendor_key_hash=fused,
            hsm_attestation_keys=hsm_keys,
            witnesses=witnesses,
            witness_quorum=quorum,
            hsm_roots=hsm_roots,
            fleet_ca=fleet_ca,
            require_signed_hsm_records=require_signed,
            logs=logs,
            require_hsm_node_binding=require_bound,
        )


def _witnesses(table: dict[str, Any], file: Path) -> tuple[tuple[CosignatureVerifier, ...], int]:
    """``[witnesses]``: the cosigner keys and the quorum (default: every witness named)."""
    if not table:
        return (), 0
    keys = table.get("keys")
    if not isinstance(keys, list) or not keys or not all(isinstance(k, str) for k in keys):
        raise ConfigError(f"{file}: [witnesses] keys is a non-empty list of witness vkeys")
    try:
        witnesses = tuple(CosignatureVerifier.from_vkey(k) for k in keys)
    except IronrootError as exc:
        raise ConfigError(f"{file}: a witness key: {exc.detail}") from exc
    named = len({w.name for w in witnesses})
    quorum = table.get("quorum", named)
    if isinstance(quorum, bool) or not isinstance(quorum, int) or not 1 <= quorum <= named:
        raise ConfigError(
            f"{file}: [witnesses] quorum is an integer from 1 to {named} (the distinct "
            "witnesses named)"
        )
    return witnesses, quorum


def _log_entry(
    value: dict[str, Any], file: Path
) -> tuple[str, tuple[NoteVerifier, ...], list[str]]:
    """One ``[[transparency.logs]]`` entry: its origin, checkpoint keys and key file paths."""
    entry = _table(value, "[transparency.logs]", {"origin", "checkpoint_keys", "service_keys"})
    origin, vkeys, paths = (entry.get(k) for k in ("origin", "checkpoint_keys", "service_keys"))
    if (
        not isinstance(origin, str)
        or not origin
        or not isinstance(vkeys, list)
        or not vkeys
        or not all(isinstance(v, str) for v in vkeys)
        or not isinstance(paths, list)
        or not paths
        or not all(isinstance(p, str) for p in paths)
    ):
        raise ConfigError(
            f"{file}: a [[transparency.logs]] entry names origin, checkpoint_keys and "
            "service_keys (text, a list of vkeys, a list of key files)"
        )
    try:
        keys = tuple(dict.fromkeys(NoteVerifier.from_vkey(v) for v in vkeys))
    except IronrootError as exc:
        raise ConfigError(f"{file}: a checkpoint key of log {origin}: {exc.detail}") from exc
    return origin, keys, paths


def _service_key_file(path: Path) -> Sequence[bytes]:
    """The kids of a receipt key file: a COSE Key Set (``*.cbor``) or one PEM public key, as
    :meth:`ironroot.platform.PlatformTrust.load_toml` reads them."""
    data = read_config(path, _MAX_FILE)
    try:
        if data[:1] and 0x80 <= data[0] <= 0x9F:  # a CBOR array: a COSE Key Set
            return tuple(decode_key_set(data))
        return (PublicKey.from_pem(data).kid,)
    except IronrootError as exc:
        raise ConfigError(f"{path}: {exc.detail}") from exc


def _table(value: object, name: str, allowed: set[str] | None = None) -> dict[str, Any]:
    """``[name]`` as a dict (a copy); with ``allowed``, no other setting in it."""
    if not isinstance(value, dict):
        raise ConfigError(f"the trust file's [{name}] is a table")
    if allowed is not None and (unknown := set(value) - allowed):
        raise ConfigError(f"[{name}] has an unknown setting {sorted(unknown)[0]!r}")
    return dict(value)


def _files(base: Path, value: object, what: str, *, empty: bool = False) -> list[Path]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{what} is a list of paths")
    if not value and not empty:
        raise ConfigError(f"{what} names no file")
    out: list[Path] = []
    for item in value:
        path = base / item
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.suffix.lower() in _PEM_SUFFIXES)
            if not found:
                raise ConfigError(f"{path} holds no PEM file")
            out.extend(found)
        elif path.is_file():
            out.append(path)
        else:
            raise ConfigError(f"{path} does not exist")
    return out


def _certificates(path: Path) -> Sequence[Any]:
    try:
        return parse_certificates(read_config(path, _MAX_FILE))
    except IronrootError as exc:
        raise ConfigError(f"{path}: {exc.detail}") from exc


def _public_key(path: Path) -> PublicKey:
    try:
        return PublicKey.from_pem(read_config(path, _MAX_FILE))
    except IronrootError as exc:
        raise ConfigError(f"{path}: {exc.detail}") from exc
