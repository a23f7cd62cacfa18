"""The desired state of a node class: a signed document on the transparency log, changed only
by registered statements with an increasing version, approved by one or more authorized people.

The document. :class:`DesiredState` says what every node of one class must run and be: the
firmware image per component (by SHA-384 of the bundle, with its PFM version, SVN and the
SHA-384 of its FMC and runtime, which the RoT's measured boot and SPDM measurements report),
the PFM (SHA-384 and SVN), the fuse settings (debug locked, lifecycle, the minimum SVN the
anti-rollback fuse holds, anti-rollback enabled, the vendor key hash), and the appraisal and
release policies by SHA-384. It is a deterministic CBOR map (RFC 8949 §4.2.1) with text
keys; decoding is strict (exact members, sizes, types, and the bytes must be the canonical
encoding of what they decode to)::

    desired-state = {
      "format": 2,
      "fleet": tstr,                          ; the fleet's identity (Fleet.identity)
      "class": tstr,                          ; the node class (1-64 of a-z A-Z 0-9 - _)
      "version": uint,                        ; >= 1; a change must increase it
      "platform": tstr,                       ; the PFM's platform id
      "firmware": { + component => {          ; exactly bmc, host, nic, gpu, nvme
          "version": tstr, "svn": uint,       ; as the PFM lists the image
          "sha384": bstr .size 48,            ; SHA-384 of the signed bundle
          "fmc": bstr .size 48,               ; SHA-384 of its FMC (TOC entry 0)
          "runtime": bstr .size 48 } },       ; SHA-384 of its runtime (TOC entry 1)
      "pfm": { "sha384": bstr .size 48, "svn": uint },
      "fuses": { "debug_locked": bool,
                 "lifecycle": "unprovisioned" / "manufacturing" / "production",
                 "min_svn": uint,             ; the fw_svn fuse is at least this
                 "anti_rollback": bool,       ; true: the anti-rollback fuse is not blown
                 "vendor_key_hash": bstr .size 48,
                 ? "ecc_revoked": uint,       ; 4-bit mask: vendor ECC keys revoked
                 ? "pqc_revoked": uint },     ; 32-bit mask: vendor PQC keys revoked
      "policies": { * name => bstr .size 48 },  ; e.g. "appraisal", "release": SHA-384
      ? "note": tstr                          ; why (at most 1,024 characters)
    }

The revocation masks name the vendor keys (manifest key slots, bit *i* = key *i*) the class
revokes: every node's ``ecc_revocation``/``pqc_revocation`` fuses must have at least those bits
set (:mod:`ironroot.fleet._reconcile` ``fuse:ecc-revoked``/``fuse:pqc-revoked``), no image the
state names may be signed with one (:meth:`DesiredState.build`: ``KeyRevoked``) and no rollout
installs one (:func:`ironroot.fleet.rollout`). A mask of 0 (none revoked, the default) is left
out of the encoding, so a document written before the masks existed is the same bytes, and its
approvals still verify; a 0 written out is not the canonical encoding and is refused.

Format 1 is the same without ``fleet``: it names no fleet, so its approvals could be replayed
into any other fleet that trusts the same approvers and log. It still decodes (``fleet`` is
then ``""``), but no check of approvals accepts it (``PolicyRejected`` ``fleet-unbound``); only
a version this fleet's store put in force before fleets had identities is read back as it is.

The statement. Each approval is a SCITT Signed Statement (COSE_Sign1) whose payload is the
document bytes themselves (not a hash envelope: the log entry shows what was approved), with
content type :data:`DESIRED_STATE_CONTENT_TYPE`, ``kid`` of the signer's key and CWT claims
``iss`` (the approver), ``sub`` = :func:`desired_subject` (``urn:ironroot:desired-state:<class>``)
and ``iat``. :func:`sign_desired` makes one.

The two-person rule. A change is in force when ``required`` distinct authorized people signed
the *same document bytes*, each in their own statement, each registered on a trusted log. Two
statements rather than one COSE_Sign with two signatures: each approval is then a log entry of
its own, with its own receipt and its signer as ``iss`` — a monitor watching the log sees who
approved what and when; approvers sign independently (no partially signed object travels
between them); and the transparency service's registration policy, which binds each ``iss``
to its keys, applies to every approver as it does to every firmware vendor.

:class:`Governance` is the class's configuration for this: the authorized signers
(``iss`` + public key), how many distinct ones a change needs, and the transparency services
whose receipts count. Its first epoch is local (``governance.json``), pinned in the fleet's
log when it is written (a ``desired-governance-pinned`` event holding its SHA-384: of its JSON,
keys sorted and no whitespace, so a reformatted file is the same governance) and checked
against that pin at every read: any other first governance — a quorum lowered, an approver
added — or the file removed is ``StorageError`` ``governance-altered`` for every reader and
publish, and ``init`` never sets it again (``Conflict`` ``governance-pinned``). A file no pin
covers (written before pins, or by an ``init`` cut short) is pinned as it is at its first read
(it is read as before, and from then on checked); approvers are revoked
and added, and the quorum and the trusted services set, since only by governed changes on the
log, approved by the quorum and on the services in force (:mod:`ironroot.fleet._governance`),
and a key revoked is refused in every later epoch (``UnknownIssuer`` ``signer-revoked``).
:func:`verify_desired` checks a set of transparent statements, in this order, each refusal a
typed error:

1. each statement parses (``MalformedStatement``), has the desired-state content type
   (``MalformedStatement`` ``not-desired-state``) and is about this class (``PolicyRejected``
   ``wrong-class``);
2. its ``iss`` is an authorized signer and its ``kid`` that signer's key (``UnknownIssuer``
   ``signer-not-authorized``), and the signature verifies under it (``BadSignature``);
   and it is valid at ``now``: before its CWT ``exp`` (``VerificationFailed``
   ``statement-expired``), at or after its ``nbf`` (``statement-not-yet-valid``);
3. it carries a receipt (``PolicyRejected`` ``no-receipt``) by a trusted service
   (``UnknownIssuer`` ``untrusted-service``; with the governance's ``service_issuer``, a
   receipt whose CWT ``iss`` names another service too) that proves this statement
   (``InvalidProof`` ``receipt-not-for-statement``): :func:`ironroot.cose.on_trusted_log`,
   the platform's check;
4. all statements carry the same document (``PolicyRejected`` ``documents-differ``), no person
   approved twice (``PolicyRejected`` ``duplicate-signer``), and at least ``required`` did
   (``PolicyRejected`` ``too-few-signers``);
5. the document decodes (``MalformedInput`` ``malformed-desired-state``), names this class
   (``PolicyRejected`` ``wrong-class``) and this fleet (``PolicyRejected`` ``wrong-fleet``; a
   format-1 document, which names none: ``fleet-unbound``), and its version is above the
   version in force (``PolicyRejected`` ``version-rollback``; the same version with another
   document: ``version-reused``), and it revokes every vendor key the version in force
   revokes (``PolicyRejected`` ``revocation-lowered``: its ``ecc_revoked``/``pqc_revoked``
   masks keep every bit the version in force sets — a fuse is never un-blown).

:func:`check_approvals` is the same without step 3, for statements not yet registered.

The store. :class:`DesiredStore` keeps, per class, in ``<fleet>/desired/<class>/``:
``governance.json`` (:meth:`Governance.to_json`), ``v<N>.cbor`` for each version that was put
in force (``{"document": bstr, "statements": [+ bstr], ? "governance": uint}``: the
transparent statements and the governance epoch it was put in force under, which verifies it
again — absent: 1), ``governance/e<N>.cbor`` for each governance change, and
``current.json`` (``{"version", "sha384"}``). :meth:`DesiredStore.publish` registers the
statements that carry no receipt yet, verifies the set against the version in force and
records the change in the fleet's event log; :meth:`DesiredStore.current` re-verifies what is
in force every time it is read, its approvals' validity at the reader's ``now`` included: a
state one of whose approvals expired is not in force any more (a new version with fresh
approvals is, and the expired one is still the floor it must exceed). A publish cut short
between its two writes (a crash: a later ``v<N>.cbor`` than ``current.json`` names, or no
``current.json``) is finished by the next publish, which verifies that version in full against
the one in force and puts it in force first, so older approvals are never published over it.
A publish cut short after ``current.json``, before its ``desired-state`` event, is finished by
the next reader or publish, which writes the lost event (once, under the publish lock): a state
in force always has its event in the fleet's log. Those events are also the store's memory:
a later version of the class recorded in force than the store holds (its files removed or
put back) is ``StorageError`` ``desired-state-rolled-back`` for every reader and publish.

The verification cache. :meth:`DesiredStore.current` runs at every admission of a class's
nodes, and the costly part of it — each stored approval's COSE_Sign1 signature and its
receipt's, and the check that the stored document is the one approved — is deterministic in
the stored bytes. A success of it is remembered (at most 64 entries, least recently used
dropped first; a failure never) under SHA-384 of exactly what decides it: the document's and
every statement's bytes, the governance (its signers and keys, the service keys and their
kids, the quorum, the service issuer) and the fleet identity. Every call still reads the
files (a changed byte is another key: checked afresh), still runs the pointer, later-version
and events rollback checks, and still judges each approval's validity (``exp``/``nbf``) and
its verified receipts' time claims against ``now``; when any of those fails, the full check
runs again and raises exactly what it raises without the cache. A publish verifies in full.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import datetime as dt
import hashlib
import hmac
import json
import re
import threading
import tomllib
from collections import OrderedDict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Final, Protocol

from ironroot._fileio import DirectoryLock, make_dirs, read_limited, write_atomic
from ironroot._memo import Memo
from ironroot.cose import (
    Limits,
    Receipt,
    SignedStatement,
    TransparentStatement,
    create_statement,
    decode_cbor,
    encode_cbor,
    verify_receipt,
)
from ironroot.crypto import PublicKey, Signer
from ironroot.errors import (
    ConfigError,
    Conflict,
    InUse,
    IronrootError,
    KeyRevoked,
    MalformedInput,
    MalformedStatement,
    NotFound,
    PolicyRejected,
    StorageError,
    UnknownIssuer,
    VerificationFailed,
)
from ironroot.firmware import FirmwareBundle
from ironroot.platform import COMPONENTS, PlatformTrust, on_trusted_log, verify_pfm
from ironroot.rot import Lifecycle

if TYPE_CHECKING:
    from ironroot.fleet._fleet import Fleet, NodeClass
    from ironroot.fleet._governance import VerifiedGovernanceChange

__all__ = [
    "DESIRED_STATE_CONTENT_TYPE",
    "AuthorizedSigner",
    "DesiredState",
    "DesiredStore",
    "FirmwareTarget",
    "FuseTarget",
    "Governance",
    "PfmTarget",
    "RevokedSigner",
    "VerifiedDesired",
    "check_approvals",
    "desired_subject",
    "sign_desired",
    "verify_desired",
]

DESIRED_STATE_CONTENT_TYPE: Final = "application/vnd.ironroot.desired-state+cbor"
_FORMAT: Final = 2
_FORMAT_UNBOUND: Final = 1  # before the fleet was named: read back from a store only
_GOVERNANCE_FORMAT: Final = "ironroot-desired-governance/1"
_PINNED: Final = "desired-governance-pinned"  # the event pinning a class's first governance
_LIMITS: Final = Limits(max_bytes=16 * 1024, max_depth=4, max_items=64)
_STATEMENT_LIMITS: Final = Limits()
_MAX_SIGNERS: Final = 64
_MAX_STATEMENTS: Final = 16
_MAX_NOTE: Final = 1024
_NAME: Final = re.compile(r"[A-Za-z0-9_-]{1,64}")
_LIFECYCLES: Final = tuple(lc.label for lc in Lifecycle)
_MAX_FILE: Final = 1024 * 1024
_ECC_KEY_SLOTS: Final = 4  # the RoT's ecc_revocation fuse (ironroot.rot, the fuse map)
_PQC_KEY_SLOTS: Final = 32  # its pqc_revocation fuse


def desired_subject(node_class: str) -> str:
    """The ``sub`` of every desired-state statement of ``node_class``."""
    return f"urn:ironroot:desired-state:{node_class}"


# --- the document ---------------------------------------------------------------------------


def _governance_sha384(governance: Governance) -> str:
    """What the fleet's log pins of a class's first governance (module docs): the SHA-384
    (hex) of its JSON (:meth:`Governance.to_json`), keys sorted and no whitespace — of the
    governance, not of the file's bytes (reformatting it changes nothing it says)."""
    data = json.dumps(governance.to_json(), sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha384(data).hexdigest()


def _bad(what: str) -> MalformedInput:
    return MalformedInput(f"the desired state is malformed: {what}", code="malformed-desired-state")


def _uint(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**63:
        raise _bad(f"{what} is an unsigned integer")
    return value


def _text(value: object, what: str, limit: int = 256) -> str:
    if not isinstance(value, str) or not value or len(value) > limit:
        raise _bad(f"{what} is text of 1 to {limit} characters")
    return value


def _digest(value: object, what: str) -> bytes:
    if not isinstance(value, bytes) or len(value) != 48:
        raise _bad(f"{what} is a SHA-384 digest (48 bytes)")
    return value


def _bool(value: object, what: str) -> bool:
    if not isinstance(value, bool):
        raise _bad(f"{what} is true or false")
    return value


def _map(
    value: object, keys: set[str], what: str, optional: frozenset[str] = frozenset()
) -> dict[str, Any]:
    if not isinstance(value, dict) or not keys <= set(value) <= keys | optional:
        raise _bad(f"{what} is a map of {', '.join(sorted(keys))}")
    return value


def _class_name(value: object) -> str:
    if not isinstance(value, str) or not _NAME.fullmatch(value):
        raise _bad("the class is 1 to 64 of letters, digits, - and _")
    return value


@dataclass(frozen=True, slots=True)
class FirmwareTarget:
    """The image a component must run: its PFM version and SVN, the bundle's SHA-384, and the
    SHA-384 of its FMC and runtime (what measured boot and SPDM report)."""

    version: str
    svn: int
    sha384: bytes
    fmc: bytes
    runtime: bytes

    def __post_init__(self) -> None:
        _text(self.version, "a firmware version")
        _uint(self.svn, "a firmware svn")
        for name in ("sha384", "fmc", "runtime"):
            _digest(getattr(self, name), f"a firmware {name}")

    @classmethod
    def of_bundle(cls, bundle: bytes, *, version: str, svn: int) -> FirmwareTarget:
        """The target for a signed bundle (parsed: ``MalformedFirmware`` if it does not)."""
        parsed = FirmwareBundle.parse(bundle)
        return cls(
            version,
            svn,
            hashlib.sha384(bundle).digest(),
            hashlib.sha384(parsed.components[0]).digest(),
            hashlib.sha384(parsed.components[1]).digest(),
        )

    def to_cbor(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "svn": self.svn,
            "sha384": self.sha384,
            "fmc": self.fmc,
            "runtime": self.runtime,
        }

    def to_json(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "svn": self.svn,
            "sha384": self.sha384.hex(),
            "fmc": self.fmc.hex(),
            "runtime": self.runtime.hex(),
        }


@dataclass(frozen=True, slots=True)
class PfmTarget:
    """The PFM every node must hold active: SHA-384 of the signed PFM, and its SVN."""

    sha384: bytes
    svn: int

    def __post_init__(self) -> None:
        _digest(self.sha384, "the PFM's sha384")
        _uint(self.svn, "the PFM's svn")


@dataclass(frozen=True, slots=True)
class FuseTarget:
    """The fuse settings every node's RoT must have."""

    vendor_key_hash: bytes
    debug_locked: bool = True
    lifecycle: str = "production"
    min_svn: int = 0
    anti_rollback: bool = True
    ecc_revoked: int = 0
    """The vendor ECC keys revoked (bit *i*: key *i*; 4 slots): the ``ecc_revocation`` fuse
    of every node has at least these bits set."""
    pqc_revoked: int = 0
    """The vendor PQC keys revoked (32 slots), as ``ecc_revoked``."""

    def __post_init__(self) -> None:
        _digest(self.vendor_key_hash, "the vendor key hash")
        _bool(self.debug_locked, "debug_locked")
        _bool(self.anti_rollback, "anti_rollback")
        if self.lifecycle not in _LIFECYCLES:
            raise _bad(f"the lifecycle is one of {', '.join(_LIFECYCLES)}")
        if _uint(self.min_svn, "min_svn") > 128:
            raise _bad("min_svn is 0 to 128 (the fw_svn fuse's width)")
        for name, kind, slots in (
            ("ecc_revoked", "ECC", _ECC_KEY_SLOTS),
            ("pqc_revoked", "PQC", _PQC_KEY_SLOTS),
        ):
            mask = _uint(getattr(self, name), name)
            if mask >> slots:
                raise _bad(f"{name} is a mask of the {slots} vendor {kind} key slots")
            if mask == (1 << slots) - 1:
                raise _bad(f"{name} revokes every vendor {kind} key: no image could boot")

    def check_bundle(self, bundle: bytes) -> None:
        """``None`` when the signed ``bundle`` is signed with vendor keys these fuses leave
        usable; else ``KeyRevoked`` (the RoT's own sentence: ``vendor ECC key 1 is revoked``)
        and ``MalformedFirmware`` when it does not parse."""
        header = FirmwareBundle.parse(bundle).manifest.header
        for kind, index, mask in (
            ("ECC", header.vendor_ecc_key_index, self.ecc_revoked),
            ("PQC", header.vendor_pqc_key_index, self.pqc_revoked),
        ):
            if mask >> index & 1:
                raise KeyRevoked(f"vendor {kind} key {index} is revoked")

    def to_cbor(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "debug_locked": self.debug_locked,
            "lifecycle": self.lifecycle,
            "min_svn": self.min_svn,
            "anti_rollback": self.anti_rollback,
            "vendor_key_hash": self.vendor_key_hash,
        }
        # absent when none is revoked: documents from before the masks keep their bytes
        if self.ecc_revoked:
            doc["ecc_revoked"] = self.ecc_revoked
        if self.pqc_revoked:
            doc["pqc_revoked"] = self.pqc_revoked
        return doc

    def to_json(self) -> dict[str, Any]:
        return {
            **self.to_cbor(),
            "vendor_key_hash": self.vendor_key_hash.hex(),
            "ecc_revoked": self.ecc_revoked,
            "pqc_revoked": self.pqc_revoked,
        }


@dataclass(frozen=True, slots=True)
class DesiredState:
    """The desired state of a node class (module docs)."""

    node_class: str
    version: int
    platform: str
    firmware: Mapping[str, FirmwareTarget]
    pfm: PfmTarget
    fuses: FuseTarget
    policies: Mapping[str, bytes] = field(default_factory=dict)
    note: str = ""
    fleet: str = ""  # the fleet's identity; "" only for a format-1 document (module docs)

    def __post_init__(self) -> None:
        _class_name(self.node_class)
        if self.fleet != "":
            _text(self.fleet, "the fleet")
        if _uint(self.version, "the version") < 1:
            raise _bad("the version counts from 1")
        _text(self.platform, "the platform")
        if not isinstance(self.firmware, Mapping) or set(self.firmware) != set(COMPONENTS):
            raise _bad(f"the firmware names exactly {', '.join(COMPONENTS)}")
        for name, target in self.firmware.items():
            if not isinstance(target, FirmwareTarget):
                raise _bad(f"the firmware of {name} is a FirmwareTarget")
        if not isinstance(self.pfm, PfmTarget) or not isinstance(self.fuses, FuseTarget):
            raise _bad("pfm and fuses are a PfmTarget and a FuseTarget")
        if not isinstance(self.policies, Mapping) or len(self.policies) > 16:
            raise _bad("policies map at most 16 names to SHA-384 digests")
        for name, digest in self.policies.items():
            if not isinstance(name, str) or not _NAME.fullmatch(name):
                raise _bad("a policy name is 1 to 64 of letters, digits, - and _")
            _digest(digest, f"the policy {name!r}")
        if not isinstance(self.note, str) or len(self.note) > _MAX_NOTE:
            raise _bad(f"the note is text of at most {_MAX_NOTE} characters")
        object.__setattr__(
            self, "firmware", MappingProxyType({n: self.firmware[n] for n in COMPONENTS})
        )
        object.__setattr__(self, "policies", MappingProxyType(dict(sorted(self.policies.items()))))

    # --- building --------------------------------------------------------------------------

    @classmethod
    def build(
        cls,
        node_class: NodeClass,
        version: int,
        *,
        pfm: bytes | None = None,
        bundles: Mapping[str, bytes] | None = None,
        fuses: FuseTarget | None = None,
        policies: Mapping[str, bytes] | None = None,
        note: str = "",
        fleet: str,
    ) -> DesiredState:
        """The desired state of ``node_class`` of the fleet ``fleet`` (its
        :meth:`~ironroot.fleet.Fleet.identity`) at ``version``: the class's PFM and images
        unless ``pfm`` / ``bundles`` (component -> signed bundle) say otherwise; ``policies``
        maps a policy name to the policy *document* (its SHA-384 goes in).

        The document is checked for coherence before anyone signs it: the PFM verifies under
        the class trust's vendor keys and names its platform (``PolicyRejected``
        ``pfm-platform-mismatch``), and it allows every image with the image's own SVN
        (``FirmwareRejected`` ``not-in-pfm``, ``PolicyRejected`` ``pfm-svn-mismatch``)."""
        trust: PlatformTrust = node_class.trust
        signed_pfm = node_class.pfm if pfm is None else pfm
        images = dict(node_class.images)
        unknown = set(bundles or {}) - set(COMPONENTS)
        if unknown:
            raise ConfigError(
                f"no component {sorted(unknown)[0]!r}: one of {', '.join(COMPONENTS)}"
            )
        images.update(bundles or {})
        checked = verify_pfm(
            signed_pfm,
            ecc_keys=trust.ecc_keys,
            pqc_keys=trust.pqc_keys,
            vendor_key_hash=trust.vendor_key_hash,
        )
        if checked.platform != trust.platform:
            raise PolicyRejected(
                f"the PFM is for {checked.platform!r}, the class for {trust.platform!r}",
                code="pfm-platform-mismatch",
            )
        firmware = {}
        for name in COMPONENTS:
            entry = checked.allows(name, images[name])
            own_svn = FirmwareBundle.parse(images[name]).manifest.header.svn
            if own_svn != entry.svn:
                raise PolicyRejected(
                    f"the PFM lists {name} {entry.version} with svn {entry.svn}, the bundle "
                    f"says {own_svn}",
                    code="pfm-svn-mismatch",
                )
            if fuses is not None:
                fuses.check_bundle(images[name])  # no node with those fuses would boot it
            firmware[name] = FirmwareTarget.of_bundle(
                images[name], version=entry.version, svn=entry.svn
            )
        if not isinstance(fleet, str) or not fleet:
            raise ConfigError("a desired state names the fleet it is for (Fleet.identity)")
        return cls(
            fleet=fleet,
            node_class=node_class.name,
            version=version,
            platform=checked.platform,
            firmware=firmware,
            pfm=PfmTarget(hashlib.sha384(signed_pfm).digest(), checked.svn),
            fuses=fuses or FuseTarget(vendor_key_hash=trust.vendor_key_hash),
            policies={k: hashlib.sha384(v).digest() for k, v in (policies or {}).items()},
            note=note,
        )

    @classmethod
    def load_toml(cls, path: Path | str, node_class: NodeClass, *, fleet: str) -> DesiredState:
        """A desired state of ``node_class`` of the fleet ``fleet`` from an operator's
        ``desired.toml`` (paths relative to it)::

        class = "node-7"            # optional: checked against the class given
        version = 2
        note = "host 2.0"           # optional
        pfm = "node-v2.pfm"         # optional: default the class's PFM
        [firmware]                  # optional, per component: a signed bundle
        host = "host-2.0.bin"       #   (default: the class's image)
        [fuses]                     # optional; these are the defaults
        debug_locked = true
        lifecycle = "production"
        min_svn = 0
        anti_rollback = true
        ecc_revoked = 0             # vendor ECC keys revoked (mask: 0x2 = key 1)
        pqc_revoked = 0             # vendor PQC keys revoked (mask)
        [policies]                  # optional: name -> the policy file
        appraisal = "appraisal.cel"
        """
        file = Path(path)
        try:
            doc = tomllib.loads(read_limited(file, _MAX_FILE).decode("utf-8"))
        except (ValueError, RecursionError) as exc:  # TOML, UTF-8, int() of 4,301+ digits
            raise ConfigError(f"{file}: {exc}") from exc
        allowed = {"class", "version", "note", "pfm", "firmware", "fuses", "policies"}
        if unknown := set(doc) - allowed:
            raise ConfigError(f"{file}: unknown settings {', '.join(sorted(unknown))}")
        if doc.get("class", node_class.name) != node_class.name:
            raise ConfigError(f"{file} is for class {doc['class']!r}, not {node_class.name!r}")
        base = file.parent
        try:
            version = doc["version"]
            if isinstance(version, bool) or not isinstance(version, int):
                raise TypeError("version is an integer")
            fuses = FuseTarget(vendor_key_hash=node_class.trust.vendor_key_hash, **_fuse_table(doc))
            pfm = (
                read_limited(base / _file_name(doc["pfm"], "pfm"), _MAX_FILE)
                if "pfm" in doc
                else None
            )
            bundles = {
                k: read_limited(base / _file_name(v, f"firmware.{k}"), 64 * 1024 * 1024)
                for k, v in _table(doc, "firmware").items()
            }
            policies = {
                k: read_limited(base / _file_name(v, f"policies.{k}"), _MAX_FILE)
                for k, v in _table(doc, "policies").items()
            }
            note = doc.get("note", "")
            if not isinstance(note, str):
                raise ConfigError("note is text")
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"{file}: missing or malformed setting: {exc}") from exc
        except MalformedInput as exc:
            raise ConfigError(f"{file}: {exc.detail}") from exc
        return cls.build(
            node_class,
            version,
            pfm=pfm,
            bundles=bundles,
            fuses=fuses,
            policies=policies,
            note=note,
            fleet=fleet,
        )

    # --- encoding --------------------------------------------------------------------------

    def to_cbor(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "format": _FORMAT if self.fleet else _FORMAT_UNBOUND,
            **({"fleet": self.fleet} if self.fleet else {}),
            "class": self.node_class,
            "version": self.version,
            "platform": self.platform,
            "firmware": {n: t.to_cbor() for n, t in self.firmware.items()},
            "pfm": {"sha384": self.pfm.sha384, "svn": self.pfm.svn},
            "fuses": self.fuses.to_cbor(),
            "policies": dict(self.policies),
        }
        if self.note:
            doc["note"] = self.note
        return doc

    def encode(self) -> bytes:
        """The document's deterministic CBOR (module docs)."""
        return encode_cbor(self.to_cbor())

    @property
    def sha384(self) -> bytes:
        return hashlib.sha384(self.encode()).digest()

    @classmethod
    def decode(cls, data: bytes) -> DesiredState:
        """Parse a document strictly; ``MalformedInput`` ``malformed-desired-state``."""
        try:
            value = decode_cbor(bytes(data), _LIMITS)
        except MalformedInput as exc:
            raise _bad(exc.detail) from exc
        if not isinstance(value, dict):
            raise _bad("the document is a map")
        form = value.get("format")
        if type(form) is not int or form not in (_FORMAT, _FORMAT_UNBOUND):  # not true, not 1.0
            raise _bad(f"unknown format {form!r}")
        members = {"format", "class", "version", "platform", "firmware", "pfm", "fuses"}
        members |= {"policies", "fleet"} if form == _FORMAT else {"policies"}
        top = _map(value, members, "the document", frozenset({"note"}))
        firmware_doc = top["firmware"]
        if not isinstance(firmware_doc, dict):
            raise _bad("the firmware is a map of components")
        firmware = {}
        for name, entry in firmware_doc.items():
            item = _map(entry, {"version", "svn", "sha384", "fmc", "runtime"}, "a firmware")
            firmware[_text(name, "a component")] = FirmwareTarget(
                _text(item["version"], "a firmware version"),
                _uint(item["svn"], "a firmware svn"),
                _digest(item["sha384"], "a firmware sha384"),
                _digest(item["fmc"], "a firmware fmc"),
                _digest(item["runtime"], "a firmware runtime"),
            )
        pfm = _map(top["pfm"], {"sha384", "svn"}, "the pfm")
        fuses = _map(
            top["fuses"],
            {"debug_locked", "lifecycle", "min_svn", "anti_rollback", "vendor_key_hash"},
            "the fuses",
            frozenset({"ecc_revoked", "pqc_revoked"}),
        )
        policies = top["policies"]
        if not isinstance(policies, dict):
            raise _bad("the policies are a map of names to digests")
        state = cls(
            fleet=_text(top["fleet"], "the fleet") if form == _FORMAT else "",
            node_class=_class_name(top["class"]),
            version=_uint(top["version"], "the version"),
            platform=_text(top["platform"], "the platform"),
            firmware=firmware,
            pfm=PfmTarget(_digest(pfm["sha384"], "the PFM's sha384"), _uint(pfm["svn"], "svn")),
            fuses=FuseTarget(
                vendor_key_hash=_digest(fuses["vendor_key_hash"], "the vendor key hash"),
                debug_locked=_bool(fuses["debug_locked"], "debug_locked"),
                lifecycle=_text(fuses["lifecycle"], "the lifecycle"),
                min_svn=_uint(fuses["min_svn"], "min_svn"),
                anti_rollback=_bool(fuses["anti_rollback"], "anti_rollback"),
                ecc_revoked=_uint(fuses.get("ecc_revoked", 0), "ecc_revoked"),
                pqc_revoked=_uint(fuses.get("pqc_revoked", 0), "pqc_revoked"),
            ),
            policies={_text(k, "a policy name", 64): _digest(v, k) for k, v in policies.items()},
            note=_text(top["note"], "the note", _MAX_NOTE) if "note" in top else "",
        )
        if state.encode() != bytes(data):
            raise _bad("the bytes are not the document's deterministic encoding")
        return state

    def to_json(self) -> dict[str, Any]:
        return {
            "fleet": self.fleet,
            "class": self.node_class,
            "version": self.version,
            "sha384": self.sha384.hex(),
            "platform": self.platform,
            "firmware": {n: t.to_json() for n, t in self.firmware.items()},
            "pfm": {"sha384": self.pfm.sha384.hex(), "svn": self.pfm.svn},
            "fuses": self.fuses.to_json(),
            "policies": {k: v.hex() for k, v in self.policies.items()},
            "note": self.note,
        }

    def check_policy(self, name: str, document: bytes) -> None:
        """``None`` when ``document`` is the policy ``name`` this state names; else
        ``PolicyRejected`` ``policy-not-desired`` (the hook a verifier or key release service
        calls before it puts a policy in force)."""
        want = self.policies.get(name)
        if want is None or not hmac.compare_digest(want, hashlib.sha384(document).digest()):
            raise PolicyRejected(
                f"the {name} policy is not the one desired state v{self.version} names",
                code="policy-not-desired",
            )


# --- who may change it ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AuthorizedSigner:
    """A person who may approve a desired state: the ``iss`` their statements carry and the
    public key they sign with."""

    iss: str
    key: PublicKey

    def __post_init__(self) -> None:
        if not isinstance(self.iss, str) or not self.iss or len(self.iss) > 256:
            raise ConfigError("a signer's iss is text of 1 to 256 characters")
        if not isinstance(self.key, PublicKey):
            raise ConfigError("a signer's key is a public key")


@dataclass(frozen=True, slots=True)
class RevokedSigner:
    """An approver removed by a governance change (:mod:`ironroot.fleet._governance`): their
    ``iss``, the key id (RFC 9679 thumbprint) of the key revoked, and the governance epoch the
    revocation made. An approval by that key counts in no later epoch, under any ``iss``, and
    the key is never authorized again."""

    iss: str
    kid: bytes
    epoch: int

    def __post_init__(self) -> None:
        if not isinstance(self.iss, str) or not self.iss or len(self.iss) > 256:
            raise ConfigError("a revoked signer's iss is text of 1 to 256 characters")
        if not isinstance(self.kid, bytes) or not 1 <= len(self.kid) <= 64:
            raise ConfigError("a revoked signer's kid is 1 to 64 bytes")
        if isinstance(self.epoch, bool) or not isinstance(self.epoch, int) or self.epoch < 2:
            raise ConfigError("a revocation's epoch is an integer of at least 2")

    def to_json(self) -> dict[str, Any]:
        return {"iss": self.iss, "kid": _b64(self.kid), "epoch": self.epoch}


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(value: object, what: str) -> bytes:
    if not isinstance(value, str):
        raise ConfigError(f"{what} is base64 text")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ConfigError(f"{what} is not valid base64") from exc


def _file_name(value: object, what: str) -> str:
    """A ``desired.toml`` file name as written: text, not a number or a table made one."""
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{what} is a file name (text)")
    return value


_FUSE_SETTINGS: Final = (
    "debug_locked",
    "lifecycle",
    "min_svn",
    "anti_rollback",
    "ecc_revoked",
    "pqc_revoked",
)


def _fuse_table(doc: Mapping[str, Any]) -> dict[str, Any]:
    """``[fuses]`` of a ``desired.toml``: only the settings a :class:`FuseTarget` has."""
    fuse_doc = _table(doc, "fuses")
    if unknown := set(fuse_doc) - set(_FUSE_SETTINGS):
        raise ConfigError(f"unknown [fuses] {', '.join(sorted(unknown))}")
    return fuse_doc


def revoked_keys(mask: int) -> str:
    """The vendor key indices a revocation mask names, ``"1, 3"`` (``""`` for none): how
    reconcile, a refusal and ``fleet desired show`` name them."""
    return ", ".join(str(i) for i in range(mask.bit_length()) if mask >> i & 1)


def revocation_of_toml(path: Path | str) -> tuple[int, int]:
    """The vendor key revocation masks (ECC, PQC) a ``desired.toml`` names in ``[fuses]``
    (0 when it names none), checked as :class:`FuseTarget` checks them: what ``ironroot
    firmware publish --desired`` refuses a bundle by. ``ConfigError`` for a file that is not
    a desired state's TOML or masks out of range."""
    file = Path(path)
    try:
        doc = tomllib.loads(read_limited(file, _MAX_FILE).decode("utf-8"))
    except (ValueError, RecursionError) as exc:
        raise ConfigError(f"{file}: {exc}") from exc
    try:
        fuses = _fuse_table(doc)
        masks = (fuses.get("ecc_revoked", 0), fuses.get("pqc_revoked", 0))
        # the masks' own checks: a 48-byte stand-in for the hash the class trust supplies
        FuseTarget(b"\x01" * 48, ecc_revoked=masks[0], pqc_revoked=masks[1])
    except MalformedInput as exc:
        raise ConfigError(f"{file}: {exc.detail}") from exc
    except ConfigError as exc:
        raise ConfigError(f"{file}: {exc.detail}") from exc
    return masks


def _table(doc: Mapping[str, Any], name: str) -> dict[str, Any]:
    """``[name]`` of a ``desired.toml`` (empty when absent), a table and nothing else."""
    value = doc.get(name, {})
    if not isinstance(value, dict):
        raise ConfigError(f"[{name}] is a table")
    return value


def _public_key(der: bytes, what: str) -> PublicKey:
    try:
        return PublicKey.from_der(der)
    except IronrootError as exc:
        raise ConfigError(f"{what}: {exc.detail}") from exc


@dataclass(frozen=True, slots=True)
class Governance:
    """Who may change a class's desired state (module docs): the authorized signers, how many
    distinct ones a change needs (``required``; 2 is the two-person rule; at most 16, the
    most approvals a change carries), and the
    transparency services whose receipts count (``kid`` -> key), optionally pinned by the
    issuer their receipts name (``service_issuer``; ``None``: the keys alone decide)."""

    node_class: str
    signers: tuple[AuthorizedSigner, ...]
    required: int
    service_keys: Mapping[bytes, PublicKey]
    service_issuer: str | None = None
    epoch: int = 1
    revoked: tuple[RevokedSigner, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.node_class, str) or not _NAME.fullmatch(self.node_class):
            raise ConfigError("a class name is 1 to 64 of letters, digits, - and _")
        signers = tuple(self.signers)
        if not 1 <= len(signers) <= _MAX_SIGNERS:
            raise ConfigError(f"a class has 1 to {_MAX_SIGNERS} authorized signers")
        if not all(isinstance(s, AuthorizedSigner) for s in signers):
            raise ConfigError("signers are AuthorizedSigner values")
        if len({s.iss for s in signers}) != len(signers):
            raise ConfigError("two authorized signers share one iss")
        if len({s.key.kid for s in signers}) != len(signers):
            raise ConfigError("two authorized signers share one key")
        required = self.required
        if isinstance(required, bool) or not isinstance(required, int):
            raise ConfigError("required is an integer")
        if not 1 <= required <= len(signers):
            raise ConfigError(f"required is 1 to the number of authorized signers ({len(signers)})")
        if required > _MAX_STATEMENTS:  # no change could ever carry enough approvals
            raise ConfigError(
                f"required is 1 to the number of authorized signers ({len(signers)}) and at "
                f"most {_MAX_STATEMENTS}, the most approvals a change carries"
            )
        if not isinstance(self.service_keys, Mapping) or not self.service_keys:
            raise ConfigError("trust at least one transparency service key")
        for kid, key in self.service_keys.items():
            if not isinstance(key, PublicKey) or key.kid != kid:
                raise ConfigError("a service key's kid is its RFC 9679 thumbprint")
        issuer = self.service_issuer
        if issuer is not None and (not isinstance(issuer, str) or not 1 <= len(issuer) <= 256):
            raise ConfigError("the transparency service's issuer is text of 1 to 256 characters")
        epoch = self.epoch
        if isinstance(epoch, bool) or not isinstance(epoch, int) or not 1 <= epoch < 2**63:
            raise ConfigError("the governance epoch is an integer of at least 1")
        revoked = tuple(self.revoked)
        if not all(isinstance(r, RevokedSigner) and r.epoch <= epoch for r in revoked):
            raise ConfigError("revoked signers are RevokedSigner values of an epoch up to this one")
        if {r.kid for r in revoked} & {s.key.kid for s in signers}:
            raise ConfigError("a revoked key is never an authorized signer again")
        object.__setattr__(self, "revoked", revoked)
        object.__setattr__(self, "signers", signers)
        object.__setattr__(self, "service_keys", MappingProxyType(dict(self.service_keys)))

    def signer(self, iss: str, kid: bytes | None) -> AuthorizedSigner:
        """The authorized signer ``iss`` when ``kid`` is their key; else ``UnknownIssuer``
        ``signer-revoked`` (a key a governance change revoked, whatever ``iss`` it signs as)
        or ``signer-not-authorized``."""
        if kid is not None:
            for gone in self.revoked:
                if hmac.compare_digest(gone.kid, kid):
                    raise UnknownIssuer(
                        f"the key {gone.kid.hex()[:16]} of {gone.iss} was revoked from class "
                        f"{self.node_class}'s approvers at governance epoch {gone.epoch}: an "
                        "approval it signed no longer counts (a change it approved that was not "
                        "put in force before then needs a quorum of today's approvers)",
                        code="signer-revoked",
                    )
        for signer in self.signers:
            if signer.iss == iss:
                if kid is not None and hmac.compare_digest(signer.key.kid, kid):
                    return signer
                raise UnknownIssuer(
                    f"{iss} is authorized for class {self.node_class}, but not with this key",
                    code="signer-not-authorized",
                )
        raise UnknownIssuer(
            f"{iss} may not change the desired state of class {self.node_class}",
            code="signer-not-authorized",
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "format": _GOVERNANCE_FORMAT,
            "class": self.node_class,
            "required": self.required,
            "signers": [{"iss": s.iss, "key": _b64(s.key.to_der())} for s in self.signers],
            "service_keys": [_b64(k.to_der()) for k in self.service_keys.values()],
            # written only when set: a governance.json without it is read as before
            **({"service_issuer": self.service_issuer} if self.service_issuer is not None else {}),
            # written only after a governance change (governance.json is epoch 1, none revoked)
            **({"epoch": self.epoch} if self.epoch != 1 else {}),
            **({"revoked": [r.to_json() for r in self.revoked]} if self.revoked else {}),
        }

    @classmethod
    def from_json(cls, doc: object) -> Governance:
        if not isinstance(doc, dict) or doc.get("format") != _GOVERNANCE_FORMAT:
            raise ConfigError(f"not a governance document of format {_GOVERNANCE_FORMAT}")
        if set(doc) - {"service_issuer", "epoch", "revoked"} != {
            "format",
            "class",
            "required",
            "signers",
            "service_keys",
        }:
            raise ConfigError("the governance document has missing or unknown members")
        signers, services = doc["signers"], doc["service_keys"]
        if not isinstance(signers, list) or not isinstance(services, list):
            raise ConfigError("signers and service_keys are lists")
        parsed = []
        for entry in signers:
            if not isinstance(entry, dict) or set(entry) != {"iss", "key"}:
                raise ConfigError("a signer is {iss, key}")
            key = _public_key(_unb64(entry["key"], "a signer's key"), "a signer's key")
            if not isinstance(entry["iss"], str):
                raise ConfigError("a signer's iss is text")
            parsed.append(AuthorizedSigner(entry["iss"], key))
        keys = [_public_key(_unb64(k, "a service key"), "a service key") for k in services]
        revoked = doc.get("revoked", [])
        if not isinstance(revoked, list) or not all(
            isinstance(r, dict) and set(r) == {"iss", "kid", "epoch"} for r in revoked
        ):
            raise ConfigError("revoked is a list of {iss, kid, epoch}")
        return cls(
            str(doc["class"]),
            tuple(parsed),
            doc["required"],
            {k.kid: k for k in keys},
            doc.get("service_issuer"),
            doc.get("epoch", 1),
            tuple(
                RevokedSigner(r["iss"], _unb64(r["kid"], "a revoked kid"), r["epoch"])
                for r in revoked
            ),
        )


# --- approvals ------------------------------------------------------------------------------


def sign_desired(
    state: DesiredState,
    signer: Signer,
    *,
    iss: str,
    iat: dt.datetime | None = None,
    exp: dt.datetime | None = None,
    nbf: dt.datetime | None = None,
) -> bytes:
    """One approval of ``state``: a Signed Statement by ``signer`` as ``iss`` (module docs),
    valid from ``nbf`` and until ``exp`` when given (its CWT claims)."""
    return _sign_approval(
        signer,
        state.encode(),
        iss=iss,
        sub=desired_subject(state.node_class),
        content_type=DESIRED_STATE_CONTENT_TYPE,
        iat=iat,
        exp=exp,
        nbf=nbf,
    )


def _sign_approval(
    signer: Signer,
    payload: bytes,
    *,
    iss: str,
    sub: str,
    content_type: str,
    iat: dt.datetime | None,
    exp: dt.datetime | None,
    nbf: dt.datetime | None,
) -> bytes:
    """An approver's Signed Statement of ``payload`` (a desired state, a governance change),
    its times as CWT claims when given."""
    return create_statement(
        signer,
        payload,
        iss=iss,
        sub=sub,
        content_type=content_type,
        iat=int(iat.timestamp()) if iat is not None else None,
        exp=int(exp.timestamp()) if exp is not None else None,
        nbf=int(nbf.timestamp()) if nbf is not None else None,
    )


def _with_receipts(statements: Sequence[bytes], registrar: Registrar | None) -> list[bytes]:
    """``statements``, each without receipts registered with ``registrar`` (when given) and
    replaced by its transparent statement; the others as they are."""
    transparent = []
    for data in statements:
        _statement, has_receipts = _parse(data)
        if not has_receipts and registrar is not None:
            data = registrar.register(data).transparent_statement
        transparent.append(data)
    return transparent


def _stored_cbor(path: Path) -> Any:
    """A stored CBOR file of the desired-state store, decoded (``StorageError`` when it is
    missing or does not decode; its shape is the caller's to check)."""
    try:
        return decode_cbor(read_limited(path, 4 * _MAX_FILE), Limits(max_bytes=4 * _MAX_FILE))
    except FileNotFoundError as exc:
        raise StorageError(f"{path} is missing") from exc
    except MalformedInput as exc:
        raise StorageError(f"{path} is malformed: {exc.detail}") from exc


@dataclass(frozen=True, slots=True)
class VerifiedDesired:
    """A desired state whose approvals verified: the document, the statements (transparent,
    once registered) and who approved it, in the order given."""

    state: DesiredState
    statements: tuple[bytes, ...]
    signers: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        return {"desired": self.state.to_json(), "signers": list(self.signers)}


def _parse(data: bytes) -> tuple[SignedStatement, bool]:
    """The statement and whether it carries receipts."""
    if not isinstance(data, bytes):
        raise MalformedStatement("a statement is bytes")
    try:
        return TransparentStatement.parse(data, _STATEMENT_LIMITS).statement, True
    except MalformedStatement:
        return SignedStatement.parse(data, _STATEMENT_LIMITS), False


@dataclass(frozen=True, slots=True)
class _Kind:
    """What a set of approvals approves: a desired state, or a governance change."""

    content_type: str
    subject: str  # the ``sub`` prefix; the class name follows
    noun: str  # "desired state", "governance"
    code: str  # the ``MalformedStatement`` code of a statement of another content type


_DESIRED: Final = _Kind(
    DESIRED_STATE_CONTENT_TYPE, "urn:ironroot:desired-state:", "desired state", "not-desired-state"
)


def _approval(
    data: bytes,
    governance: Governance,
    *,
    receipts: bool,
    now: dt.datetime | None,
    kind: _Kind = _DESIRED,
) -> tuple[SignedStatement, AuthorizedSigner]:
    statement, has_receipts = _parse(data)
    if statement.content_type != kind.content_type:
        raise MalformedStatement(
            f"not a {kind.noun} statement (content type {kind.content_type})",
            code=kind.code,
        )
    if statement.claims.sub != kind.subject + governance.node_class:
        raise PolicyRejected(
            f"the statement is about {statement.claims.sub!r}, not class {governance.node_class}",
            code="wrong-class",
        )
    signer = governance.signer(statement.claims.iss, statement.kid)
    statement.sign1.verify(signer.key)
    statement.validity  # noqa: B018  # MalformedStatement for a non-integer exp or nbf
    if now is not None:
        try:
            statement.check_validity(now)
        except VerificationFailed as exc:
            raise VerificationFailed(
                f"the approval by {signer.iss} of class {governance.node_class}'s {kind.noun} "
                f"is outside its validity: {exc.detail}",
                code=exc.code,
            ) from exc
    if receipts:
        _logged(data, has_receipts, governance, signer.iss, now)
    return statement, signer


def _logged(
    data: bytes, has_receipts: bool, governance: Governance, iss: str, now: dt.datetime | None
) -> None:
    """On a trusted log, by a receipt not issued after ``now`` (when given: else
    ``VerificationFailed`` ``receipt-from-the-future``)."""
    what = f"the approval by {iss}"
    if not has_receipts:
        raise PolicyRejected(f"{what} is not on a transparency log: no receipt", code="no-receipt")
    at = None if now is None else now.timestamp()
    on_trusted_log(
        data,
        governance.service_keys,
        what,
        limits=_STATEMENT_LIMITS,
        issuer=governance.service_issuer,
        now=at,
    )


def _quorum(
    statements: Sequence[bytes],
    governance: Governance,
    *,
    receipts: bool,
    now: dt.datetime | None,
    kind: _Kind,
) -> tuple[bytes, list[str]]:
    """The one payload ``statements`` approve and their distinct signers, at least
    ``governance.required`` of them (module docs, 1-4)."""
    if isinstance(statements, bytes | str) or not 1 <= len(statements) <= _MAX_STATEMENTS:
        raise ConfigError(f"give 1 to {_MAX_STATEMENTS} approval statements")
    approvals = [
        _approval(data, governance, receipts=receipts, now=now, kind=kind) for data in statements
    ]
    payload = approvals[0][0].payload
    if any(s.payload != payload for s, _ in approvals[1:]):
        raise PolicyRejected(
            "the approvals are not of one document: each must sign the same bytes",
            code="documents-differ",
        )
    seen: list[str] = []
    for _, signer in approvals:
        if signer.iss in seen:
            raise PolicyRejected(
                f"{signer.iss} approved twice: the approvals must be by distinct people",
                code="duplicate-signer",
            )
        seen.append(signer.iss)
    if len(seen) < governance.required:
        raise PolicyRejected(
            f"class {governance.node_class} needs {governance.required} distinct authorized "
            f"signers, this change has {len(seen)} ({', '.join(seen)})",
            code="too-few-signers",
        )
    return payload, seen


def _check(
    statements: Sequence[bytes],
    governance: Governance,
    current: DesiredState | None,
    *,
    fleet: str,
    receipts: bool,
    now: dt.datetime | None,
    stored_unbound: bool = False,
) -> VerifiedDesired:
    payload, seen = _quorum(statements, governance, receipts=receipts, now=now, kind=_DESIRED)
    state = DesiredState.decode(payload)
    if state.node_class != governance.node_class:
        raise PolicyRejected(
            f"the document is for class {state.node_class}, not {governance.node_class}",
            code="wrong-class",
        )
    if not state.fleet:
        if not stored_unbound:
            raise PolicyRejected(
                f"desired state v{state.version} of class {state.node_class} is format "
                f"{_FORMAT_UNBOUND}, which names no fleet: its approvals could be replayed from "
                f"another fleet; build and approve it again (format {_FORMAT}, naming {fleet})",
                code="fleet-unbound",
            )
    elif not hmac.compare_digest(state.fleet.encode(), fleet.encode()):
        raise PolicyRejected(
            f"the document is for fleet {state.fleet}, not {fleet}: approvals are never "
            "replayed from another fleet",
            code="wrong-fleet",
        )
    if current is not None:
        if state.version < current.version:
            raise PolicyRejected(
                f"version {state.version} is below version {current.version} in force",
                code="version-rollback",
            )
        if state.version == current.version and state.encode() != current.encode():
            raise PolicyRejected(
                f"version {state.version} is in force with another document: a change needs "
                f"version {current.version + 1} or higher",
                code="version-reused",
            )
        _check_revocations_kept(state, current)
    return VerifiedDesired(state, tuple(statements), tuple(seen))


def _check_revocations_kept(state: DesiredState, current: DesiredState) -> None:
    """``PolicyRejected`` ``revocation-lowered`` when ``state`` clears a bit of a revocation
    mask that ``current`` (the version in force) sets: a fuse is never un-blown, and a vendor
    key revoked stays revoked (module docs, 5)."""
    for name, kind, kept, wanted in (
        ("ecc_revoked", "ECC", current.fuses.ecc_revoked, state.fuses.ecc_revoked),
        ("pqc_revoked", "PQC", current.fuses.pqc_revoked, state.fuses.pqc_revoked),
    ):
        cleared = kept & ~wanted
        if cleared:
            keys = revoked_keys(cleared)
            raise PolicyRejected(
                f"version {state.version} of class {state.node_class}'s desired state does not "
                f"revoke vendor {kind} key(s) {keys}, which version {current.version} in force "
                "revokes: a revocation fuse is never un-blown and a revoked vendor key stays "
                f"revoked (keep its bit in {name})",
                code="revocation-lowered",
            )


def check_approvals(
    statements: Sequence[bytes],
    governance: Governance,
    *,
    fleet: str,
    current: DesiredState | None = None,
    now: dt.datetime | None = None,
) -> VerifiedDesired:
    """Every check of :func:`verify_desired` except the receipts (module docs, 1, 2, 4, 5)."""
    return _check(statements, governance, current, fleet=fleet, receipts=False, now=_at(now))


def verify_desired(
    statements: Sequence[bytes],
    governance: Governance,
    *,
    fleet: str,
    current: DesiredState | None = None,
    now: dt.datetime | None = None,
) -> VerifiedDesired:
    """The desired state the transparent ``statements`` approve for the fleet ``fleet`` (its
    :meth:`~ironroot.fleet.Fleet.identity`), once every check of the module docs passed;
    ``current`` is the state in force (its version must be exceeded); each approval must be
    valid at ``now`` (its CWT ``exp``/``nbf``; ``None``: the wall clock's time)."""
    return _check(statements, governance, current, fleet=fleet, receipts=True, now=_at(now))


def _at(now: dt.datetime | None) -> dt.datetime:
    """``now``, or the wall clock's time for a caller that gives none."""
    return now if now is not None else dt.datetime.now(dt.UTC)


# --- the verification cache ------------------------------------------------------------------

_CACHED: Final = 64


def _cache_key(
    document: bytes, statements: Sequence[bytes], governance: Governance, fleet: str
) -> bytes:
    """SHA-384 over exactly what decides the signatures and receipts of a stored state: the
    document's and every statement's bytes, the governance (its signers, keys, kids, quorum
    and service issuer) and the fleet identity, each length-prefixed."""
    gov = json.dumps(governance.to_json(), sort_keys=True).encode()
    kids = b"".join(len(k).to_bytes(4, "big") + k for k in sorted(governance.service_keys))
    h = hashlib.sha384()
    for part in (document, *statements, gov, kids, fleet.encode()):
        h.update(len(part).to_bytes(8, "big"))
        h.update(part)
    return h.digest()


class _VerifiedCache:
    """Stored desired states whose signatures and receipts verified (module docs, "The
    verification cache"): bounded, keyed by exact bytes, successes only; a hit still judges
    every time claim against ``now``, and any that fails sends the caller to the full check."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._lock = threading.Lock()
        self._entries: OrderedDict[
            bytes, tuple[VerifiedDesired, tuple[tuple[SignedStatement, tuple[Receipt, ...]], ...]]
        ] = OrderedDict()

    def remember(self, key: bytes, verified: VerifiedDesired, governance: Governance) -> None:
        """After a full check passed: each statement with the receipts that verify (by
        signature and issuer; their time claims are judged at each hit)."""
        parts = []
        for data in verified.statements:
            parsed = TransparentStatement.parse(data, _STATEMENT_LIMITS)
            entry = parsed.statement.log_entry()
            good = []
            for raw in parsed.receipts:
                receipt = Receipt.parse(raw, _STATEMENT_LIMITS)
                try:
                    verify_receipt(
                        receipt, entry, governance.service_keys, issuer=governance.service_issuer
                    )
                except IronrootError:
                    continue
                good.append(receipt)
            parts.append((parsed.statement, tuple(good)))
        with self._lock:
            self._entries[key] = (verified, tuple(parts))
            self._entries.move_to_end(key)
            while len(self._entries) > self._size:
                self._entries.popitem(last=False)

    def fresh(self, key: bytes, now: dt.datetime) -> VerifiedDesired | None:
        """The cached state if every approval is valid at ``now`` and each has a verified
        receipt whose time claims hold at ``now``; else ``None`` (check in full)."""
        with self._lock:
            found = self._entries.get(key)
            if found is not None:
                self._entries.move_to_end(key)
        if found is None:
            return None
        verified, parts = found
        at = now.timestamp()
        for statement, receipts in parts:
            try:
                statement.check_validity(now)
            except IronrootError:
                return None
            if not any(_claims_hold(r, at) for r in receipts):
                return None
        return verified

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


def _claims_hold(receipt: Receipt, at: float) -> bool:
    try:
        receipt.check_times(at)
    except IronrootError:
        return False
    return True


_VERIFIED: Final = _VerifiedCache(_CACHED)
# each class's governance chain, verified, by SHA-384 of governance.json's content, the fleet
# and every stored change's bytes (successes only)
_CHAINS: Final[Memo[bytes, tuple[Governance, ...]]] = Memo(_CACHED)


# --- the store ------------------------------------------------------------------------------


class _Registration(Protocol):
    @property
    def transparent_statement(self) -> bytes: ...


class Registrar(Protocol):
    """Anything that registers a statement and returns its transparent form
    (:class:`ironroot.transparency.TransparencyClient`)."""

    def register(self, statement: bytes) -> _Registration: ...


class DesiredStore:
    """The desired states of a fleet's classes, in ``<fleet>/desired/`` (module docs)."""

    def __init__(self, fleet: Fleet) -> None:
        self.fleet = fleet
        self.directory = fleet.directory / "desired"

    def __repr__(self) -> str:
        return f"DesiredStore({str(self.directory)!r})"

    def _dir(self, node_class: str) -> Path:
        self.fleet.node_class(node_class)  # NotFound for an unknown class
        return self.directory / node_class

    # --- governance ------------------------------------------------------------------------

    def init(self, governance: Governance) -> None:
        """Set a class's governance, once (``Conflict`` when it has one, ``Conflict``
        ``governance-pinned`` when the fleet's log pinned one, its file removed since): epoch
        1, written to ``governance.json`` and pinned in the fleet's log (a
        ``desired-governance-pinned`` event with its SHA-384, module docs);
        every later change is a governed one (:meth:`change_governance`)."""
        if governance.epoch != 1 or governance.revoked:
            raise ConfigError(
                "a class's first governance is epoch 1 with no revoked signer: later ones are "
                "made by governance changes (`ironroot fleet desired approver-apply`)"
            )
        node_class = governance.node_class
        base = self._dir(node_class)
        path = base / "governance.json"
        # the file there: ``Conflict`` as before (written exclusively); removed since the
        # fleet's log pinned it: never set again
        pinned = None if path.exists() else self._pinned(node_class)
        if pinned is not None:
            raise Conflict(
                f"class {node_class}'s first governance was pinned in the fleet's log at "
                f"`ironroot fleet desired init` (SHA-384 {str(pinned)[:16]}): it is set once "
                "(put the original governance.json back)",
                code="governance-pinned",
            )
        make_dirs(base)
        write_atomic(
            path, json.dumps(governance.to_json(), indent=2).encode(), mode=0o644, exclusive=True
        )
        # after the file: an init cut short between the two is pinned at the first read
        self._pin(node_class, governance, dt.datetime.now(dt.UTC), recovered=False)

    def governance(self, node_class: str) -> Governance:
        """The governance in force: ``governance.json`` (epoch 1) with every stored
        governance change applied, each verified again (:meth:`governance_history`)."""
        return self._chain(node_class)[-1]

    def governance_history(self, node_class: str) -> tuple[Governance, ...]:
        """The class's governance at each epoch, oldest (``governance.json``, epoch 1) first:
        each later one made by the stored change ``governance/e<N>.cbor``, verified again
        against the one before it (signatures, receipts, quorum, epoch; not its approvals'
        validity period: once applied, a change stays applied). A gap in the changes is
        ``StorageError``; fewer changes than the fleet's log recorded in force is
        ``StorageError`` ``governance-rolled-back`` (a removed revocation never comes back
        as an approver)."""
        return self._chain(node_class)

    def _chain(self, node_class: str) -> tuple[Governance, ...]:
        from ironroot.fleet._governance import replay_governance_change

        first = self._initial_governance(node_class)
        base = self._dir(node_class) / "governance"
        found = (re.fullmatch(r"e(\d+)\.cbor", p.name) for p in base.glob("e*.cbor"))
        epochs = sorted(int(m.group(1)) for m in found if m)
        if epochs != list(range(2, 2 + len(epochs))):
            raise StorageError(
                f"class {node_class}'s governance changes are not epochs 2 to "
                f"{len(epochs) + 1} without a gap: {epochs}"
            )
        stored = [self._stored_change(node_class, epoch) for epoch in epochs]
        fleet = self.fleet.identity()
        h = hashlib.sha384()
        for part in (json.dumps(first.to_json(), sort_keys=True).encode(), fleet.encode()):
            h.update(len(part).to_bytes(8, "big") + part)
        for statements in stored:
            for data in statements:
                h.update(len(data).to_bytes(8, "big") + data)
            h.update(b"\xff" * 8)
        key = h.digest()
        chain = _CHAINS.get(key)
        if chain is None:
            built = [first]
            for epoch, statements in zip(epochs, stored, strict=True):
                try:
                    verified = replay_governance_change(statements, built[-1], fleet=fleet)
                except IronrootError as exc:
                    raise StorageError(
                        f"class {node_class}'s stored governance change e{epoch}.cbor does not "
                        f"verify against epoch {epoch - 1}: {exc.code}: {exc.detail}"
                    ) from exc
                built.append(verified.governance)
            chain = tuple(built)
            _CHAINS.put(key, chain)
        highest = self._governance_events(node_class)
        if highest > len(chain):
            raise StorageError(
                f"the fleet's log recorded governance epoch {highest} of class {node_class} "
                f"in force, the store holds epoch {len(chain)}: its governance changes were "
                "rolled back",
                code="governance-rolled-back",
            )
        return chain

    def _stored_change(self, node_class: str, epoch: int) -> tuple[bytes, ...]:
        path = self._dir(node_class) / "governance" / f"e{epoch}.cbor"
        doc = _stored_cbor(path)
        if (
            not isinstance(doc, dict)
            or set(doc) != {"statements"}
            or not isinstance(doc["statements"], list)
            or not all(isinstance(s, bytes) for s in doc["statements"])
        ):
            raise StorageError(f"{path} is malformed")
        return tuple(doc["statements"])

    def _governance_events(self, node_class: str) -> int:
        """The highest governance epoch of ``node_class`` the fleet's log recorded (1: none)."""
        highest, since = 1, 0
        while batch := self.fleet.events(kind="desired-governance", since=since):
            for event in batch:
                epoch = event.detail.get("epoch")
                if event.detail.get("class") == node_class and type(epoch) is int:
                    highest = max(highest, epoch)
            since = batch[-1].seq
        return highest

    def change_governance(
        self,
        node_class: str,
        statements: Sequence[bytes],
        *,
        now: dt.datetime,
        registrar: Registrar | None = None,
    ) -> VerifiedGovernanceChange:
        """Revoke or add an approver, set the quorum or the trusted services
        (:mod:`ironroot.fleet._governance`): check the approvals
        (all but receipts) against the governance in force, register those without a
        receipt with ``registrar``, verify the whole set, store it as
        ``governance/e<N>.cbor`` and record a ``desired-governance`` event. Under the class's
        publish lock: a publish cut short is finished first (under the governance it was
        approved for), and no publish runs meanwhile. Returns the
        :class:`~ironroot.fleet.VerifiedGovernanceChange`."""
        from ironroot.fleet._governance import (
            check_governance_change,
            verify_governance_change,
        )

        base = self._dir(node_class)
        make_dirs(base)
        fleet = self.fleet.identity()
        with DirectoryLock(base, ".publish.lock", what="desired state of class " + node_class):
            chain = self._chain(node_class)
            self._record_lost_governance(node_class, chain, now)
            self._finish_cut_short(node_class, chain, now)
            governance = chain[-1]
            check_governance_change(statements, governance, fleet=fleet, now=now)
            transparent = _with_receipts(statements, registrar)
            verified = verify_governance_change(transparent, governance, fleet=fleet, now=now)
            epoch = verified.governance.epoch
            make_dirs(base / "governance")
            write_atomic(
                base / "governance" / f"e{epoch}.cbor",
                encode_cbor({"statements": list(transparent)}),
                mode=0o644,
                exclusive=True,
            )
            self._record_governance(node_class, verified.governance, list(verified.signers), now)
        return verified

    def _record_governance(
        self,
        node_class: str,
        governance: Governance,
        signers: list[str] | None,
        now: dt.datetime,
        *,
        change: Mapping[str, Any] | None = None,
    ) -> None:
        detail: dict[str, Any] = {
            "class": node_class,
            "epoch": governance.epoch,
            "previous": governance.epoch - 1,
            "approvers": [s.iss for s in governance.signers],
            "required": governance.required,
            "revoked": [r.to_json() for r in governance.revoked],
            "service_kids": [kid.hex() for kid in governance.service_keys],
            "service_issuer": governance.service_issuer,
        }
        if signers is None:
            detail["recovered"] = True
        else:
            detail["signers"] = signers
        self.fleet.record(None, "desired-governance", detail, now=now)

    def _record_lost_governance(
        self, node_class: str, chain: tuple[Governance, ...], now: dt.datetime
    ) -> None:
        """The ``desired-governance`` events a crash after ``e<N>.cbor`` lost (under the
        publish lock): a governance in force always has its event in the fleet's log."""
        for governance in chain[self._governance_events(node_class) :]:
            self._record_governance(node_class, governance, None, now)

    def _pinned(self, node_class: str) -> object | None:
        """The SHA-384 (hex) of ``node_class``'s first governance the fleet's log pinned (the
        first pin, whatever its value: a damaged one matches nothing), ``None`` when none."""
        since = 0
        while batch := self.fleet.events(kind=_PINNED, since=since):
            for event in batch:
                if event.detail.get("class") == node_class:
                    return event.detail.get("sha384")
            since = batch[-1].seq
        return None

    def _pin(
        self, node_class: str, governance: Governance, at: dt.datetime, *, recovered: bool
    ) -> None:
        detail: dict[str, Any] = {
            "class": node_class,
            "sha384": _governance_sha384(governance),
            "approvers": [s.iss for s in governance.signers],
            "required": governance.required,
            "service_kids": [kid.hex() for kid in governance.service_keys],
            "service_issuer": governance.service_issuer,
        }
        if recovered:
            detail["recovered"] = True
        self.fleet.record(None, _PINNED, detail, now=at)

    def _initial_governance(self, node_class: str) -> Governance:
        """``governance.json``, checked against its pin in the fleet's log (module docs):
        ``StorageError`` ``governance-altered`` when it is not the governance pinned, or
        missing while pinned. A file no pin covers (written before ``init`` pinned it, or by
        an ``init`` cut short) is pinned as it is now, dated when it was written."""
        path = self._dir(node_class) / "governance.json"
        pinned = self._pinned(node_class)
        if not path.is_file():
            if pinned is not None:
                raise StorageError(
                    f"class {node_class}'s first governance ({path}) is missing, but the "
                    f"fleet's log pinned it at `ironroot fleet desired init` (SHA-384 "
                    f"{str(pinned)[:16]}): put the original back",
                    code="governance-altered",
                )
            raise NotFound(
                f"class {node_class} has no desired-state governance (run `ironroot fleet "
                "desired init`)"
            )
        try:
            doc = json.loads(read_limited(path, _MAX_FILE))
        except (ValueError, RecursionError) as exc:  # RecursionError: nested too deep
            raise StorageError(f"{path} is not JSON") from exc
        governance = Governance.from_json(doc)
        if governance.node_class != node_class:
            raise StorageError(f"{path} is the governance of class {governance.node_class}")
        if governance.epoch != 1 or governance.revoked:
            raise StorageError(
                f"{path} is the first governance (epoch 1): later epochs are governance changes"
            )
        digest = _governance_sha384(governance)
        if pinned is None:
            written = dt.datetime.fromtimestamp(path.stat().st_mtime, dt.UTC)
            self._pin(node_class, governance, written, recovered=True)
        elif pinned != digest:  # a damaged pin (no text) matches nothing
            raise StorageError(
                f"class {node_class}'s first governance ({path}) is not the one the fleet's "
                f"log pinned at `ironroot fleet desired init` (SHA-384 {str(pinned)[:16]}, the "
                f"file's {digest[:16]}): it was changed outside a governed change (put the "
                "original back; later changes are approved on the log: `ironroot fleet "
                "desired approver-apply`)",
                code="governance-altered",
            )
        return governance

    # --- the state in force ----------------------------------------------------------------

    def version(self, node_class: str) -> int:
        """The version in force, 0 when none was published."""
        return self._pointer(node_class)[0]

    def _pointer(self, node_class: str) -> tuple[int, bytes]:
        """``current.json``: the version in force and its document's SHA-384 ((0, b"") when
        none was published)."""
        path = self._dir(node_class) / "current.json"
        if not path.is_file():
            return 0, b""
        try:
            doc = json.loads(read_limited(path, 4096))
            version, sha384 = doc["version"], bytes.fromhex(doc["sha384"])
            if isinstance(version, bool) or not isinstance(version, int) or version < 1:
                raise ValueError("version")
            if len(sha384) != 48:
                raise ValueError("sha384")
            return version, sha384
        except (ValueError, KeyError, TypeError, RecursionError) as exc:
            raise StorageError(f"{path} is malformed") from exc

    def _stored(self, node_class: str, version: int) -> tuple[bytes, tuple[bytes, ...], int]:
        """Stored version ``version``: its document, statements and the governance epoch it
        was put in force under (1 when the file predates governance changes)."""
        path = self._dir(node_class) / f"v{version}.cbor"
        doc = _stored_cbor(path)
        if (
            not isinstance(doc, dict)
            or set(doc) - {"governance"} != {"document", "statements"}
            or not isinstance(doc["document"], bytes)
            or not isinstance(doc["statements"], list)
            or not all(isinstance(s, bytes) for s in doc["statements"])
            or type(doc.get("governance", 1)) is not int
            or doc.get("governance", 1) < 1
        ):
            raise StorageError(f"{path} is malformed")
        return doc["document"], tuple(doc["statements"]), doc.get("governance", 1)

    def current(self, node_class: str, *, now: dt.datetime | None = None) -> VerifiedDesired:
        """The desired state in force, verified again now (receipts, signers, quorum, this
        fleet, and that it is the version and document ``current.json`` names, and no later
        version was put in force: ``StorageError`` ``desired-state-rolled-back``, or
        ``Conflict`` ``desired-state-publishing`` while a publish holds its lock between its
        writes); ``NotFound`` if none. A state put in force whose ``desired-state`` event a
        crash lost is given it first (:meth:`publish`), so no reader sees a change the audit
        trail does not show. Each approval must be valid at ``now`` (``None``: the wall
        clock's time): a state whose approvals expired, or are not valid yet, is not in force
        (``VerificationFailed`` ``statement-expired`` / ``statement-not-yet-valid``)."""
        return self._current(node_class, None, locked=False, now=_at(now))

    def _current(
        self,
        node_class: str,
        chain: tuple[Governance, ...] | None,
        *,
        locked: bool,
        now: dt.datetime | None,
    ) -> VerifiedDesired:
        version, sha384 = self._pointer(node_class)
        if version == 0:
            self._check_not_rolled_back(node_class, 0, self._events(node_class, None)[1])
            raise NotFound(
                f"class {node_class} has no desired state (run `ironroot fleet desired publish`)"
            )
        chain = chain or self._chain(node_class)
        later = [v for v in self.history(node_class) if v > version]
        if later:
            if not locked and self._publishing(node_class):
                raise Conflict(
                    f"version {later[-1]} of class {node_class}'s desired state is being "
                    "published: read it again",
                    code="desired-state-publishing",
                )
            raise StorageError(
                f"class {node_class}'s current.json names version {version}, but version "
                f"{later[-1]} was put in force: the pointer was rolled back",
                code="desired-state-rolled-back",
            )
        verified = self._verified(node_class, version, chain, now=now)
        if not hmac.compare_digest(verified.state.sha384, sha384):
            raise StorageError(
                f"the stored desired state of class {node_class} is not the document "
                "current.json names"
            )
        recorded, highest = self._events(node_class, verified.state)
        self._check_not_rolled_back(node_class, version, highest)
        if not recorded:
            if locked:
                self._record_lost(node_class, verified)
            else:
                with self._lock_or_busy(node_class, version):
                    return self._current(node_class, chain, locked=True, now=now)
        return verified

    @contextlib.contextmanager
    def _lock_or_busy(self, node_class: str, version: int) -> Iterator[None]:
        """The publish lock of ``node_class``, or ``Conflict`` ``desired-state-publishing``
        when a publish holds it (it records the event itself)."""
        try:
            lock = DirectoryLock(self._dir(node_class), ".publish.lock", what="desired state")
        except InUse as exc:
            raise Conflict(
                f"version {version} of class {node_class}'s desired state is being published: "
                "read it again",
                code="desired-state-publishing",
            ) from exc
        try:
            yield
        finally:
            lock.close()

    def _publishing(self, node_class: str) -> bool:
        """Whether a publish of ``node_class`` holds its lock now."""
        try:
            lock = DirectoryLock(self._dir(node_class), ".publish.lock", what="desired state")
        except InUse:
            return True
        lock.close()
        return False

    def _verified(
        self,
        node_class: str,
        version: int,
        chain: tuple[Governance, ...],
        current: DesiredState | None = None,
        *,
        now: dt.datetime | None,
        latest: bool = False,
    ) -> VerifiedDesired:
        """Stored version ``version``, verified (above ``current`` when given; its approvals
        valid at ``now`` unless ``None``: the floor a new version must exceed) under the
        governance of the epoch it was put in force in — or, ``latest``, for a version not
        in force yet (a publish cut short), under the governance in force now: a change
        approved by a key revoked since needs today's quorum. A format-1
        document (it names no fleet) is accepted here only: this store put it in force before
        fleets had identities (module docs); a publish never stores one now."""
        document, statements, epoch = self._stored(node_class, version)
        if epoch > len(chain):
            raise StorageError(
                f"the stored desired state v{version} of class {node_class} names governance "
                f"epoch {epoch}, the class is at epoch {len(chain)}"
            )
        governance = chain[-1] if latest else chain[epoch - 1]
        fleet = self.fleet.identity()
        key = _cache_key(document, statements, governance, fleet) if current is None else None
        if key is not None and now is not None:
            hit = _VERIFIED.fresh(key, now)
            if hit is not None:
                return hit
        verified = _check(
            statements,
            governance,
            current,
            fleet=self.fleet.identity(),
            receipts=True,
            now=now,
            stored_unbound=True,
        )
        if verified.state.version != version or verified.state.encode() != document:
            raise StorageError(
                f"the stored desired state of class {node_class} is not version {version}"
            )
        if key is not None:
            _VERIFIED.remember(key, verified, governance)
        return verified

    def history(self, node_class: str) -> list[int]:
        """The versions that were put in force, oldest first."""
        base = self._dir(node_class)
        found = (re.fullmatch(r"v(\d+)\.cbor", p.name) for p in base.glob("v*.cbor"))
        return sorted(int(m.group(1)) for m in found if m)

    def publish(
        self,
        node_class: str,
        statements: Sequence[bytes],
        *,
        now: dt.datetime,
        registrar: Registrar | None = None,
    ) -> VerifiedDesired:
        """Put a new desired state in force: check the approvals (all but receipts) against
        the governance, this fleet and the version in force, register those without a receipt
        with ``registrar``, verify the whole set (:func:`verify_desired`), store it and record
        a ``desired-state`` event. Publishing the version in force again is a no-op.

        The store and the event log are two files, so the three writes (``v<N>.cbor``,
        ``current.json``, the event) are made in that order under the class's publish lock,
        and a crash between any two is finished by the next reader or publisher: a later
        ``v<N>.cbor`` than the pointer names is verified and put in force with its event
        (:meth:`_finish_cut_short`), and a state in force with no event for it gets its event
        (``"recovered": true``, at the time ``current.json`` was written). After a kill at any
        point, what anyone reads is the old state without the event or the new one with it."""
        base = self._dir(node_class)
        make_dirs(base)
        fleet = self.fleet.identity()
        with DirectoryLock(base, ".publish.lock", what="desired state of class " + node_class):
            chain = self._chain(node_class)  # read under the lock: no change lands meanwhile
            governance = chain[-1]
            self._record_lost_governance(node_class, chain, now)
            self._finish_cut_short(node_class, chain, now)
            # the version in force is the floor a change must exceed, expired or not (read
            # as any reader does, its rollback check included)
            current = None
            if self.version(node_class):
                current = self._current(node_class, chain, locked=True, now=None).state
            else:
                self._check_not_rolled_back(node_class, 0, self._events(node_class, None)[1])
            check_approvals(statements, governance, fleet=fleet, current=current, now=now)
            transparent = _with_receipts(statements, registrar)
            verified = verify_desired(
                transparent, governance, fleet=fleet, current=current, now=now
            )
            state = verified.state
            if current is not None and state.version == current.version:
                return self._current(node_class, chain, locked=True, now=now)
            stored: dict[str, Any] = {"document": state.encode(), "statements": list(transparent)}
            if governance.epoch != 1:  # written only then: a store before changes reads as is
                stored["governance"] = governance.epoch
            write_atomic(base / f"v{state.version}.cbor", encode_cbor(stored), mode=0o644)
            self._point(node_class, state)
            self._record(node_class, verified, current.version if current else None, now)
        return verified

    def _point(self, node_class: str, state: DesiredState) -> None:
        write_atomic(
            self._dir(node_class) / "current.json",
            json.dumps({"version": state.version, "sha384": state.sha384.hex()}).encode(),
            mode=0o644,
        )

    def _record(
        self,
        node_class: str,
        verified: VerifiedDesired,
        previous: int | None,
        now: dt.datetime,
        *,
        recovered: bool = False,
    ) -> None:
        detail: dict[str, Any] = {
            "class": node_class,
            "version": verified.state.version,
            "sha384": verified.state.sha384.hex(),
            "signers": list(verified.signers),
            "previous": previous,
        }
        epoch = self._stored(node_class, verified.state.version)[2]
        if epoch != 1:
            detail["governance"] = epoch
        if recovered:
            detail["recovered"] = True
        self.fleet.record(None, "desired-state", detail, now=now)

    def _events(self, node_class: str, state: DesiredState | None) -> tuple[bool, int]:
        """Whether the fleet's log has the ``desired-state`` event of ``state``, and the
        highest version of ``node_class`` any of its events put in force (0: none)."""
        want = (node_class, state.version, state.sha384.hex()) if state is not None else None
        found, highest = False, 0
        since = 0
        while batch := self.fleet.events(kind="desired-state", since=since):
            for event in batch:
                detail = event.detail
                if detail.get("class") != node_class:
                    continue
                version = detail.get("version")
                if isinstance(version, int) and not isinstance(version, bool):
                    highest = max(highest, version)
                if (detail.get("class"), version, detail.get("sha384")) == want:
                    found = True
            since = batch[-1].seq
        return found, highest

    def _check_not_rolled_back(self, node_class: str, version: int, highest: int) -> None:
        """``StorageError`` ``desired-state-rolled-back`` when the fleet's log recorded a
        later version of ``node_class`` in force than the store holds (its files were removed
        or put back: the approvals of an older version would otherwise be in force again)."""
        if highest > version:
            raise StorageError(
                f"the fleet's log recorded version {highest} of class {node_class}'s desired "
                f"state in force, the store holds version {version or 'none'}: its files were "
                "rolled back",
                code="desired-state-rolled-back",
            )

    def _record_lost(self, node_class: str, verified: VerifiedDesired) -> None:
        """The event of the state in force that a crash after ``current.json`` lost, dated
        when ``current.json`` was written (the change's time, not the repair's)."""
        version = verified.state.version
        previous = max((v for v in self.history(node_class) if v < version), default=None)
        written = (self._dir(node_class) / "current.json").stat().st_mtime
        at = dt.datetime.fromtimestamp(written, dt.UTC)
        self._record(node_class, verified, previous, at, recovered=True)

    def _finish_cut_short(
        self, node_class: str, chain: tuple[Governance, ...], now: dt.datetime
    ) -> None:
        """Finish a publish cut short (a crash) between writing ``v<N>.cbor`` and pointing
        ``current.json`` at it: when a later version is stored than the pointer names (or the
        pointer is missing), that version is verified in full against the one in force and put
        in force, with its event (unless the log has it: a pointer lost after its publish).
        Without this, the class's desired state could never be read or changed again, or a
        missing pointer would let older approvals be published anew."""
        history = self.history(node_class)
        pointed = self.version(node_class)
        if not history or history[-1] <= pointed:
            return
        previous = self._verified(node_class, pointed, chain, now=None).state if pointed else None
        # not in force yet: judged by today's governance (a key revoked since does not count)
        verified = self._verified(node_class, history[-1], chain, previous, now=now, latest=True)
        recorded, highest = self._events(node_class, verified.state)
        self._check_not_rolled_back(node_class, history[-1], highest)
        self._point(node_class, verified.state)
        if not recorded:
            self._record(node_class, verified, pointed or None, now)
