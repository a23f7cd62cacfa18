"""The platform's SPDM devices (NIC, GPU, NVMe …): their identities, what they measure, and
how the BMC checks them against reference values found on the log.

A :class:`PlatformDevice` is one device: a name, the CoRIM class ``vendor`` and ``model`` its
firmware vendor publishes reference values for, and an SPDM identity
(:class:`ironroot.spdm.DeviceIdentity`: an ECDSA P-384 key and its certificate chain, root
first). :meth:`PlatformDevice.create` makes and stores one, :meth:`PlatformDevice.open` loads
it. The platform pins the identity's ``root`` certificate when it creates the device and
passes that pinned root to every measurement, so a device that shows up with another identity
(another device's key and chain swapped in) no longer chains to it.

What the device measures. Its firmware is an :mod:`ironroot.firmware` bundle in its flash.
:meth:`PlatformDevice.responder` is the device's SPDM responder over the bytes it actually
holds (:func:`device_measurement_blocks`), DMTF measurement blocks:

============  ======================================  ===========================================
index         value type                              value
============  ======================================  ===========================================
1             MutableFirmware, digest                 SHA-384 of the FMC component (TOC entry 0)
2             MutableFirmware, digest                 SHA-384 of the runtime (TOC entry 1)
3 … N         MutableFirmware, digest                 SHA-384 of each further component, in TOC
                                                      order
0xEF          SecureVersionNumber, raw (8 bytes LE)   the manifest header's SVN
0xFE          DeviceMode, raw (16 bytes)              :data:`DEVICE_MODE`: normal operational
                                                      mode, debug capable, no debug mode active
                                                      or active since reset
============  ======================================  ===========================================

The digests are computed from the component bytes, not copied from the TOC, so a tampered
image shows in the signed measurements. Bytes that do not parse as a bundle (an erased or
corrupted flash) are measured as one block, index 1, the SHA-384 of the whole image, and no
SVN block: what a ROM does when it finds no manifest (the DeviceMode block, the hardware's
state, is reported either way). The DeviceMode block is at the index DSP0274 gives it (0xFE),
and reported raw whether or not the requester asks for raw bit streams (as
:class:`ironroot.spdm.Responder` and libspdm do): a verifier reads debug as off only from a
raw DeviceMode block (:mod:`ironroot.attestation.evidence`, ``spdm`` claims).

Reference values. :func:`device_references` turns the vendor's CoRIM Transparent Statements
(:func:`ironroot.firmware.reference_statement`, registered on a transparency service; other
statements given with them, such as the manifest statement, are passed over) into
:class:`~ironroot.attestation.ReferenceValues` with
:func:`ironroot.attestation.reference_values_from_statement`: every statement must carry a
receipt (``VerificationFailed`` code ``no-receipt``), every receipt must verify under the
trusted services' keys (``UnknownIssuer``, ``InvalidProof``, ``BadSignature``), the CoRIM must
be valid at ``now`` (``VerificationFailed`` code ``rim-expired``; with
``outside_validity="report"``, the platform's boot under ``expired_manifest = "report"``, a
statement refused for its dates alone is taken, its values keeping their span) and name only
this device's
``vendor`` and ``model``, published by one of ``issuers`` (``UnknownIssuer`` code
``publisher-not-allowed``).

Measuring. :func:`measure_device` runs a real SPDM session with an
:class:`ironroot.spdm.Requester` over the device's responder (:func:`measure_responder` over
any transport): VCA offering only ECDSA P-384 / SHA-384; DIGESTS and CERTIFICATE, the chain
verified to the pinned root (``ChainNotTrusted``, ``CertificateExpired``); CHALLENGE, signed
over M1/M2 with a measurement summary of all blocks; signed GET_MEASUREMENTS answering
``nonce`` (``BadSignature``, ``SpdmProtocolError``). Then the blocks are compared with the
reference values logged for the device's vendor and model, in this order:

1. the blocks are the layout above (``EndorsementMismatch`` code ``unexpected-measurement`` for
   any other block, a DeviceMode block sent as a digest included, ``measurement-missing``
   when FMC, runtime, SVN or DeviceMode is absent), and the DeviceMode says no debug mode
   is or has been active since reset (DeviceModeState bits 0-3 clear; else
   ``PolicyRejected`` code ``debug-unlocked``);
2. reference values exist for the product (``no-reference-values``);
3. each component digest is a logged SHA-384 for its measurement key: index 1 ``fmc``,
   index 2 ``runtime``, index 3 and up a ``component-<id>`` (``measurement-mismatch``);
4. one logged release lists them all (``mixed-releases``, the rule
   :func:`ironroot.attestation.common_releases` the generic appraisal applies too): a
   release is one CoMID, named by its issuer and ``tag-id``, as :class:`ReferenceValues`
   keeps it (a CoMID another of the same issuer ``replaces``, or an older ``tag-version``,
   is gone). Matched one by one, a device running the FMC of release A with the runtime of
   release B, both logged at one SVN, would pass although nobody released that
   combination;
5. the reported SVN is the SVN that release states for every one of those digests
   (``svn-mismatch``: component digests do not cover the header, so this binds the SVN to
   the release);
6. the SVN is not below the logged minimum, the highest any logged release of that component
   states (``SvnRollback``, code ``svn-rollback``).

Why step 4 is strict. Every flow that logs a device's reference values in this project logs a
release's components in one CoMID: :func:`ironroot.firmware.reference_corim` writes one CoMID
per bundle, every TOC entry in it (``tag-id`` from the model and the manifest digest), and the
vendor tooling (``ironroot firmware publish``), the demo, the fleet's class statements and the
platform's update statements all use it; a CoMID's ``tag-id`` is mandatory, so every value
read from the log names its release. A CoRIM made with other tools and logged as it is
(``ironroot statement sign --content-type application/rim+cbor``) must state each release in
one CoMID too. A vendor that adds or changes a component of a release
logs a new ``tag-version`` of the same ``tag-id`` (or a CoMID that ``replaces`` it) stating
every component: the old version stops counting. A CoMID that only ``supplements`` another
is a release of its own here, and a value not read from a CoMID (``tag_id`` ``None``, built by
a caller) is a release of itself alone: neither widens what a device may combine.

:func:`measure_device` reports a failing device in its :class:`DeviceMeasurement` (``ok``
false, the error's ``code`` and ``detail``, and the typed ``error`` itself) instead of raising:
the platform holds such a device in reset. :func:`verify_device` raises that error.

"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final

from cryptography.hazmat.primitives.serialization import Encoding

from ironroot._fileio import make_dirs, read_limited, warn_if_exposed, write_atomic
from ironroot._memo import Memo
from ironroot.attestation import (
    ReferencePublisher,
    ReferenceValue,
    ReferenceValues,
    common_releases,
    reference_values_from_statement,
)
from ironroot.corim import CORIM_CONTENT_TYPE, HASH_ALG_SHA384
from ironroot.cose import RECEIPTS, SignedStatement, TransparentStatement, encode_cbor
from ironroot.crypto import (
    Algorithm,
    PrivateKey,
    PublicKey,
    Signer,
    Verifier,
    load_certificate,
    load_signer,
    save_signer,
)
from ironroot.errors import (
    ConfigError,
    Conflict,
    EndorsementMismatch,
    IronrootError,
    MalformedInput,
    MalformedStatement,
    NotFound,
    PolicyRejected,
    SpdmProtocolError,
    StorageError,
    SvnRollback,
    VerificationFailed,
)
from ironroot.firmware import FirmwareBundle
from ironroot.spdm import (
    NONCE_SIZE,
    AnyMeasurementBlock,
    BaseAsymAlgo,
    BaseHashAlgo,
    DeviceIdentity,
    DeviceMode,
    MeasurementBlock,
    MeasurementSummaryHashType,
    MeasurementValueType,
    Requester,
    Responder,
    Transport,
    load_certificates,
    measurement_summary_hash,
)

__all__ = [
    "DEVICE_LAYOUT",
    "DEVICE_MODE",
    "DEVICE_MODE_INDEX",
    "DEVICE_SVN_INDEX",
    "DeviceMeasurement",
    "PlatformDevice",
    "compare_device_references",
    "device_block_keys",
    "device_measurement_blocks",
    "device_references",
    "measure_device",
    "measure_responder",
    "verify_device",
]

DEVICE_SVN_INDEX: Final = 0xEF
"""The measurement index of the device's SVN block (the last implementation-defined index)."""
DEVICE_MODE_INDEX: Final = 0xFE
"""The measurement index of the device's DeviceMode block (DSP0274: the structured
representation of debug and device mode is at index 0xFE)."""
DEVICE_MODE: Final = DeviceMode(
    operational_mode_capabilities=0x04,  # normal operational mode
    operational_mode_state=0x04,  # in it
    device_mode_capabilities=0x1F,  # debug capable; reports debug active / active since reset
    device_mode_state=0x00,  # no debug mode active, none since reset
)
"""What a platform device's DeviceMode block says: a production part in normal operation,
with no debug mode active or active since the last reset."""
_DEBUG_STATE_BITS: Final = 0x0F  # DeviceModeState: (non-)invasive debug active, has been

_SHA384_SIZE: Final = 48
_NAME: Final = re.compile(r"[a-z][a-z0-9_-]{0,31}")
_MAX_LABEL: Final = 256
_MAX_FILE: Final = 256 * 1024
_PEM: Final = b"-----BEGIN"
_FORMAT: Final = 1
DEVICE_LAYOUT: Final[Mapping[int, str]] = MappingProxyType({1: "fmc", 2: "runtime"})
"""The blocks every device reports, by index, and the measurement key (``mkey``) of the
reference values each is compared with (module docs): 1 the FMC, 2 the runtime. Each further
component, from index 3, is a ``component-<id>`` (:func:`device_block_keys`)."""
_EXTRA_MKEY: Final = "component-"
_SHA384_ALGS: Final = frozenset({HASH_ALG_SHA384, "sha-384"})


# --- what a device measures -------------------------------------------------------------------


def device_measurement_blocks(firmware: bytes) -> tuple[MeasurementBlock, ...]:
    """The DMTF measurement blocks of a device holding ``firmware`` (see the module doc)."""
    if not isinstance(firmware, bytes):
        raise ConfigError("device firmware must be bytes")
    mode = MeasurementBlock(
        DEVICE_MODE_INDEX, MeasurementValueType.DEVICE_MODE, DEVICE_MODE.encode(), raw=True
    )
    try:
        bundle = FirmwareBundle.parse(firmware)
    except MalformedInput:
        whole = hashlib.sha384(firmware).digest()
        return (MeasurementBlock(1, MeasurementValueType.MUTABLE_FIRMWARE, whole), mode)
    blocks = [
        MeasurementBlock(
            index, MeasurementValueType.MUTABLE_FIRMWARE, hashlib.sha384(component).digest()
        )
        for index, component in enumerate(bundle.components, start=1)
    ]
    svn = bundle.manifest.header.svn.to_bytes(8, "little")
    blocks.append(
        MeasurementBlock(
            DEVICE_SVN_INDEX, MeasurementValueType.SECURE_VERSION_NUMBER, svn, raw=True
        )
    )
    blocks.append(mode)
    return tuple(blocks)


# The blocks of a firmware image, remembered by its SHA-384 (every node of a class holds the
# same images): for the platform's own measurements, whose flash read computed that digest of
# the very bytes measured (see _measure_read).
_BLOCKS: Memo[bytes, tuple[MeasurementBlock, ...]] = Memo(64)


def _blocks_of(firmware: bytes, sha384: bytes) -> tuple[MeasurementBlock, ...]:
    found = _BLOCKS.get(sha384)
    if found is None:
        found = device_measurement_blocks(firmware)
        _BLOCKS.put(sha384, found)
    return found


# --- one device and its identity --------------------------------------------------------------


def _check_name(name: object) -> str:
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ConfigError(
            f"device name {name!r}: a lower-case letter, then up to 31 of a-z, 0-9, '_' or '-'"
        )
    return name


def _check_label(value: object, what: str) -> str:
    if not isinstance(value, str) or not 1 <= len(value) <= _MAX_LABEL:
        raise ConfigError(f"device {what} must be text of 1 to {_MAX_LABEL} characters")
    return value


def _paths(directory: Path, name: str) -> tuple[Path, Path, Path]:
    """(key, chain, description) files of device ``name`` in ``directory``."""
    base = Path(directory)
    return base / f"{name}.key.pem", base / f"{name}.chain.pem", base / f"{name}.device.json"


def _read(path: Path, what: str) -> bytes:
    try:  # a regular file: a named pipe held open by a writer would keep the read waiting
        return read_limited(path, _MAX_FILE, regular=True)
    except FileNotFoundError as exc:
        raise NotFound(f"{what} {path} does not exist") from exc
    except OSError as exc:
        raise StorageError(f"{what} {path} cannot be read: {exc.strerror}") from exc


@dataclass(frozen=True, slots=True)
class PlatformDevice:
    """One SPDM device of the platform: ``name`` (``nic``, ``gpu``, ``nvme`` …), the CoRIM
    class ``vendor`` and ``model`` of its firmware's reference values, and its ``identity``
    (ECDSA P-384 key and certificate chain)."""

    name: str
    vendor: str
    model: str
    identity: DeviceIdentity = field(repr=False)

    def __post_init__(self) -> None:
        _check_name(self.name)
        _check_label(self.vendor, "vendor")
        _check_label(self.model, "model")
        if not isinstance(self.identity, DeviceIdentity):
            raise ConfigError("a platform device needs an ironroot.spdm.DeviceIdentity")
        if self.identity.key.algorithm != Algorithm.ES384:
            raise ConfigError("a platform device's SPDM key is ECDSA P-384")

    @property
    def root(self) -> bytes:
        """The root certificate (DER) of the device's chain: what the platform pins."""
        return self.identity.root

    @property
    def chain(self) -> tuple[bytes, ...]:
        """The device's certificate chain (DER, root first, leaf last)."""
        return self.identity.chain

    def responder(self, firmware: bytes) -> Responder:
        """The device's SPDM responder while it holds ``firmware`` in its flash."""
        return Responder(
            self.identity.key, self.identity.chain, device_measurement_blocks(firmware)
        )

    @classmethod
    def create(
        cls,
        directory: Path,
        name: str,
        *,
        vendor: str,
        model: str,
        now: datetime,
        days: int = 3650,
    ) -> PlatformDevice:
        """Make a device with a new identity valid from ``now`` for ``days`` days and store it
        in ``directory``: ``<name>.key.pem`` (PKCS#8, mode 0600), ``<name>.chain.pem`` and
        ``<name>.device.json`` (written last: until it exists the device does not). A name
        already there raises :class:`Conflict`."""
        _check_name(name)
        identity = DeviceIdentity.generate(
            Algorithm.ES384, now=now, common_name=f"Platform device {name}", days=days
        )
        device = cls(name, vendor, model, identity)
        key_path, chain_path, description_path = _paths(directory, name)
        try:
            make_dirs(Path(directory))
            if any(p.exists() for p in (key_path, chain_path, description_path)):
                raise Conflict(f"device {name!r} already exists in {directory}")
            save_signer(identity.key, key_path)
            chain_pem = b"".join(
                load_certificate(der, der_only=True).public_bytes(Encoding.PEM)
                for der in identity.chain
            )
            write_atomic(chain_path, chain_pem, mode=0o644, exclusive=True)
            description = {"device": _FORMAT, "name": name, "vendor": vendor, "model": model}
            text = json.dumps(description, indent=2, sort_keys=True) + "\n"
            write_atomic(description_path, text.encode("utf-8"), mode=0o644, exclusive=True)
        except OSError as exc:
            raise StorageError(f"device {name!r} cannot be stored in {directory}: {exc}") from exc
        return device

    @classmethod
    def open(cls, directory: Path, name: str) -> PlatformDevice:
        """Load device ``name`` from ``directory`` (:class:`NotFound` if it is not there;
        :class:`ConfigError` if its files do not make one device: a key its leaf certificate
        does not certify, a key that is not P-384, a description that does not parse)."""
        _check_name(name)
        key_path, chain_path, description_path = _paths(directory, name)
        raw = _read(description_path, "device description")
        try:
            description = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
            raise ConfigError(f"{description_path}: not JSON ({exc})") from exc
        if (
            not isinstance(description, dict)
            or set(description) != {"device", "name", "vendor", "model"}
            or description["device"] != _FORMAT
        ):
            raise ConfigError(f"{description_path}: not a device description (format {_FORMAT})")
        if description["name"] != name:
            raise ConfigError(f"{description_path} describes device {description['name']!r}")
        pem = _read(key_path, "device key")  # NotFound before the key loader's own errors
        key: Signer
        if pem.lstrip().startswith(_PEM):
            # What load_signer does with a PEM key file (within its size limit, as _read's
            # is lower), on the bytes read once.
            key = PrivateKey.from_pem(pem)
            warn_if_exposed(key_path, "a private key")
        else:  # anything else is load_signer's to read and refuse (a JWK, an LMS state)
            try:
                key = load_signer(key_path)
            except OSError as exc:
                raise StorageError(f"device key {key_path} cannot be read: {exc}") from exc
        if not isinstance(key, PrivateKey):
            raise ConfigError(f"{key_path} is not an ECDSA P-384 key")
        chain = load_certificates(_read(chain_path, "device certificate chain"))
        return cls(name, description["vendor"], description["model"], DeviceIdentity(key, chain))


# --- reference values from the log ------------------------------------------------------------


def _is_logged_corim(data: bytes, number: int) -> bool:
    """Whether statement ``number`` carries a CoRIM (other statements an update ships with,
    its manifest statement or a SAFE review, are not reference values); a CoRIM that is a
    bare Signed Statement, without receipts, is not on the log (``no-receipt``)."""
    try:
        return TransparentStatement.parse(data).statement.content_type == CORIM_CONTENT_TYPE
    except MalformedStatement as exc:
        try:
            bare = SignedStatement.parse(data)
        except IronrootError:
            raise exc from None
        if bare.sign1.unprotected.get(RECEIPTS) not in (None, [], ()):
            raise  # receipts there, but malformed: the parser's own error
        if bare.content_type != CORIM_CONTENT_TYPE:
            return False
        raise VerificationFailed(
            f"reference statement {number} is not on the log: it carries no receipt",
            code="no-receipt",
        ) from exc


# Reference values of one logged CoRIM statement, remembered by what they depend on: the
# statement's bytes, the trusted services' keys (each a PublicKey, named by its RFC 9679
# thumbprint) and the publisher (vendor, model, issuers). Every node of a class measures its
# devices against the same statements: their receipts and vendor signatures are verified and
# their CoRIMs parsed once, not once per node and measurement. The statement's dates are judged
# at each use (every value keeps the span of all of them); a failure is never remembered, and
# what a use cannot answer from an entry (another key, another statement, outside the dates)
# is verified afresh. Statements of another content type are remembered as such by their bytes.
_REFERENCES: dict[bytes, tuple[ReferenceValue, ...]] = {}
_NOT_CORIM: dict[bytes, None] = {}
_REFERENCES_LOCK = threading.Lock()
_REFERENCES_MAX = 256


def _remember(table: dict[bytes, Any], key: bytes, value: object) -> None:
    with _REFERENCES_LOCK:
        table[key] = value
        while len(table) > _REFERENCES_MAX:
            del table[next(iter(table))]


def _references_key(
    digest: bytes,
    service_keys: Mapping[bytes, Verifier],
    publisher: ReferencePublisher,
    service_issuer: str | None,
) -> bytes | None:
    keys: list[list[bytes]] = []
    for kid, key in sorted(service_keys.items(), key=lambda item: bytes(item[0])):
        if not isinstance(key, PublicKey):
            return None  # a verifier the cache cannot name by its key: verified every time
        keys.append([bytes(kid), key.kid])
    framed = encode_cbor(
        [
            "ironroot-device-references/1",
            digest,
            keys,
            publisher.vendor,
            publisher.model,
            sorted(publisher.issuers),
            service_issuer,
        ]
    )
    return hashlib.sha256(framed).digest()


def device_references(
    statements: Iterable[bytes],
    *,
    trust_service_keys: Mapping[bytes, Verifier],
    issuers: frozenset[str],
    vendor: str,
    model: str,
    now: datetime,
    vendor_keys: Mapping[str, Sequence[Verifier]] | None = None,
    outside_validity: str = "refuse",
    service_issuer: str | None = None,
) -> ReferenceValues:
    """The reference values of a device's product (CoRIM class ``vendor`` and ``model``) from
    its vendor's CoRIM Transparent Statements; the first statement refused raises its error
    (see the module doc). Statements of another content type (the manifest statement an
    update ships with, a SAFE review) are passed over. ``vendor_keys`` also pins the statement
    keys of each issuer. ``outside_validity="report"`` (the platform's boot of installed
    devices with ``expired_manifest = "report"``) takes a statement refused only for its dates
    (``rim-expired``) anyway, every other check made as before; its values keep their span,
    so :func:`_outside_validity` names the finding and an appraisal refuses them.
    ``service_issuer``: the transparency service the receipts must name (the trust's
    ``service_issuer``; another: ``UnknownIssuer`` ``untrusted-service``)."""
    if now.tzinfo is None:
        raise ConfigError("now must be a timezone-aware datetime")
    if outside_validity not in ("refuse", "report"):
        raise ConfigError('outside_validity is "refuse" or "report"')
    report = outside_validity == "report"
    if isinstance(issuers, str) or not all(isinstance(i, str) for i in issuers):
        raise ConfigError("issuers is a set of statement issuers (iss), each a string")
    publisher = ReferencePublisher(
        _check_label(vendor, "vendor"), _check_label(model, "model"), frozenset(issuers)
    )
    values: list[ReferenceValue] = []
    for number, data in enumerate(statements):
        if not isinstance(data, bytes):
            raise ConfigError("reference statements are bytes")
        digest = hashlib.sha256(data).digest()
        if digest in _NOT_CORIM:
            continue
        key = (
            _references_key(digest, trust_service_keys, publisher, service_issuer)
            if vendor_keys is None
            else None
        )
        found = _REFERENCES.get(key) if key is not None else None
        if found is not None and (report or all(v.valid_at(now) for v in found)):
            values.extend(found)
            continue
        if not _is_logged_corim(data, number):
            _remember(_NOT_CORIM, digest, None)
            continue
        fresh = reference_values_from_statement(
            data,
            service_keys=trust_service_keys,
            vendor_keys=vendor_keys,
            publishers=(publisher,),
            now=now,
            outside_validity=outside_validity,
            service_issuer=service_issuer,
        )
        if key is not None and fresh:
            # Each value carries every date of its statement (rim-validity, signature
            # validity, CWT nbf/exp): a remembered entry is served while they all hold. A
            # statement without values has none to carry its dates: read afresh each time.
            _remember(_REFERENCES, key, fresh)
        values.extend(fresh)
    return ReferenceValues(values)


def _outside_validity(references: ReferenceValues, now: datetime) -> str | None:
    """``None`` when every value of ``references`` counts at ``now``; else the finding, one
    clause per CoRIM subject, e.g. ``the reference values of 'pkg:firmware/acme/nic' expired
    at 2027-06-01T12:00:00+00:00`` (or ``are not valid before …``)."""
    t = int(now.timestamp())
    found: dict[str, None] = {}
    for value in references:
        if value.valid_at(now):
            continue
        if value.not_before is not None and t < value.not_before:
            at = _instant(value.not_before)
            found[f"the reference values of {value.subject!r} are not valid before {at}"] = None
        elif value.not_after is not None:
            at = _instant(value.not_after)
            found[f"the reference values of {value.subject!r} expired at {at}"] = None
    return "; ".join(found) or None


def _instant(seconds: int) -> str:
    """``seconds`` (a CoRIM's date: any CBOR integer) in ISO 8601, or, where no calendar date
    holds it (before year 1, after 9999, past the platform's ``time_t``), as the number."""
    try:
        return datetime.fromtimestamp(seconds, UTC).isoformat()
    except (OverflowError, OSError, ValueError):
        return f"{seconds} seconds since the epoch"


# --- measuring a device -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DeviceMeasurement:
    """The outcome of measuring one device: ``ok``, else the failure's ``code`` and ``detail``
    and the typed ``error``; the component digests the device signed (``measurements``:
    index -> lower-case hex), its ``svn``, the SPDM RootHash of its verified chain
    (``root_hash``: SHA-384 of the root certificate, hex) and the session as SPDM evidence
    (:class:`ironroot.spdm.SpdmEvidence` bytes) for a verifier. What the session did not
    reach is empty or ``None``. ``validity`` is ``None``, or the finding when the device
    matched reference values outside their validity dates (taken under
    ``expired_manifest = "report"``: :meth:`ironroot.platform.Platform.measure`), as boot
    reports it in its ``ComponentBoot.validity``."""

    name: str
    ok: bool
    code: str | None = None
    detail: str = ""
    measurements: Mapping[int, str] = field(default_factory=lambda: MappingProxyType({}))
    svn: int | None = None
    root_hash: str | None = None
    evidence: bytes | None = field(default=None, repr=False)
    error: IronrootError | None = field(default=None, repr=False, compare=False)
    validity: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "ok": self.ok,
            "code": self.code,
            "detail": self.detail,
            "measurements": {str(index): value for index, value in self.measurements.items()},
            "svn": self.svn,
            "root_hash": self.root_hash,
            "validity": self.validity,
        }


@dataclass(slots=True)
class _Seen:
    """What a session established before it stopped."""

    measurements: dict[int, str] = field(default_factory=dict)
    svn: int | None = None
    root_hash: str | None = None
    evidence: bytes | None = None


def _session(
    send: Transport, root: bytes, now: datetime, nonce: bytes | None, seen: _Seen
) -> tuple[AnyMeasurementBlock, ...]:
    """VCA, DIGESTS, CERTIFICATE (to the pinned root), CHALLENGE, signed MEASUREMENTS."""
    requester = Requester(
        send,
        root_certificate=root,
        now=now,
        base_asym_algo=BaseAsymAlgo.ECDSA_P384,
        base_hash_algo=BaseHashAlgo.SHA_384,
    )
    connection = requester.init_connection()
    requester.get_digests()
    seen.root_hash = requester.get_certificate_chain().root_hash.hex()
    auth = requester.challenge(summary=MeasurementSummaryHashType.ALL)
    measurements = requester.get_measurements(nonce=nonce)
    summary = measurement_summary_hash(measurements.blocks, connection.base_hash_algo)
    if not hmac.compare_digest(summary, auth.measurement_summary_hash):
        raise SpdmProtocolError(
            "the CHALLENGE_AUTH measurement summary does not match the signed measurements"
        )
    seen.evidence = requester.last_evidence()
    return measurements.blocks


def _layout(blocks: Sequence[AnyMeasurementBlock], seen: _Seen) -> tuple[dict[int, bytes], int]:
    """The component digests by index and the SVN, if the blocks are the device layout."""
    components: dict[int, bytes] = {}
    svn: int | None = None
    mode: DeviceMode | None = None
    for block in blocks:
        if (
            isinstance(block, MeasurementBlock)
            and block.index == DEVICE_SVN_INDEX
            and block.value_type == MeasurementValueType.SECURE_VERSION_NUMBER
            and block.raw
        ):
            svn = block.secure_version_number()
        elif (
            isinstance(block, MeasurementBlock)
            and block.index == DEVICE_MODE_INDEX
            and block.value_type == MeasurementValueType.DEVICE_MODE
            and block.raw
        ):
            mode = block.device_mode()
        elif (
            isinstance(block, MeasurementBlock)
            and 1 <= block.index < DEVICE_SVN_INDEX
            and block.value_type == MeasurementValueType.MUTABLE_FIRMWARE
            and not block.raw
            and len(block.value) == _SHA384_SIZE
        ):
            components[block.index] = block.value
        else:
            raise EndorsementMismatch(
                f"measurement {block.index} ({block.type_name}) is not one a platform device"
                " reports",
                code="unexpected-measurement",
            )
    seen.measurements = {index: value.hex() for index, value in sorted(components.items())}
    seen.svn = svn
    if sorted(components) != list(range(1, len(components) + 1)):
        raise EndorsementMismatch(
            f"component measurements {sorted(components)} are not numbered 1, 2, 3 …",
            code="measurement-missing",
        )
    missing = [what for index, what in DEVICE_LAYOUT.items() if index not in components]
    if svn is None:
        missing.append("SVN")
    if mode is None:
        missing.append("raw DeviceMode")
    if missing or svn is None or mode is None:
        raise EndorsementMismatch(
            f"the device reports no {' and no '.join(missing)} measurement",
            code="measurement-missing",
        )
    if mode.device_mode_state & _DEBUG_STATE_BITS:
        raise PolicyRejected(
            f"the device's DeviceMode says debug mode is or was active since reset"
            f" (DeviceModeState {mode.device_mode_state:#x})",
            code="debug-unlocked",
        )
    return components, svn


def device_block_keys(
    components: Mapping[int, bytes], references: ReferenceValues
) -> dict[int, str]:
    """The measurement key each of a device's component blocks (index -> SHA-384, the SVN
    block apart, in the order given) is named by: its :data:`DEVICE_LAYOUT` key; from index 3
    (a block's index is its place in the TOC, not the component's id), the first by name of
    the ``component-<id>`` keys of the logged values that list its digest and no earlier block
    took (as :func:`compare_device_references` matches such a block to any of them), else
    ``component-<index>``. For a verifier that appraises a device's blocks by name
    (``ironroot.fleet``): the one place, with :data:`DEVICE_LAYOUT`, that says how the
    layout's blocks map to reference values."""
    keys: dict[int, str] = {}
    for index, digest in components.items():
        key = DEVICE_LAYOUT.get(index)
        if key is None:
            logged = sorted(
                {v.mkey for v in references.listing(digest) if v.mkey.startswith(_EXTRA_MKEY)}
                - set(keys.values())
            )
            key = logged[0] if logged else f"{_EXTRA_MKEY}{index}"
        keys[index] = key
    return keys


def _matching(
    product: Sequence[ReferenceValue], index: int, digest: bytes
) -> tuple[ReferenceValue, ...]:
    mkey = DEVICE_LAYOUT.get(index)
    return tuple(
        value
        for value in product
        if (value.mkey == mkey if mkey is not None else value.mkey.startswith(_EXTRA_MKEY))
        and any(alg in _SHA384_ALGS and known == digest for alg, known in value.digests)
        and not value.unchecked  # it states what a digest and an SVN do not show
    )


def compare_device_references(
    components: Mapping[int, bytes],
    svn: int,
    references: ReferenceValues,
    *,
    vendor: str,
    model: str,
) -> None:
    """Compare a device's firmware measurements (block index -> SHA-384, the SVN block
    apart) and its reported ``svn`` with the ``references`` logged for ``vendor`` / ``model``
    (module docs, steps 2-6): the first refusal raises its error. Shared by measuring and by
    the offline audit of a device's session."""
    product = [v for v in references if v.vendor == vendor and v.model == model]
    if not product:
        raise EndorsementMismatch(
            f"no reference values are logged for vendor {vendor!r} model {model!r}",
            code="no-reference-values",
        )
    matched: dict[int, tuple[ReferenceValue, ...]] = {}
    for index, digest in sorted(components.items()):
        found = _matching(product, index, digest)
        if not found:
            what = DEVICE_LAYOUT.get(index, "component")
            raise EndorsementMismatch(
                f"measurement {index} ({what}) {digest.hex()[:16]}… matches no logged"
                f" reference value of {model!r}",
                code="measurement-mismatch",
            )
        matched[index] = found
    releases = common_releases(matched, product=repr(model))
    if not any(all(any(v.svn == svn for v in b) for b in blocks) for blocks in releases):
        stated = sorted({v.svn for bs in releases for b in bs for v in b if v.svn is not None})
        raise EndorsementMismatch(
            f"the device reports SVN {svn}, but the logged release of its measurements states"
            f" SVN {stated or 'none'}",
            code="svn-mismatch",
        )
    floor = max(
        (f for found in matched.values() for f in map(references.minimum_svn, found) if f),
        default=0,
    )
    if svn < floor:
        raise SvnRollback(
            f"the device runs SVN {svn}, below the logged minimum SVN {floor} of {model!r}"
        )


def measure_responder(
    send: Transport,
    *,
    name: str,
    vendor: str,
    model: str,
    root: bytes,
    references: ReferenceValues,
    now: datetime,
    nonce: bytes | None = None,
) -> DeviceMeasurement:
    """Measure the SPDM responder behind ``send`` as device ``name`` of product ``vendor`` /
    ``model``, its chain verified to the pinned ``root`` (DER), and compare with
    ``references``; a failure is reported, not raised (see the module doc). ``nonce`` (32
    bytes) is a verifier's challenge for the signed measurements; by default a fresh one."""
    _check_name(name)
    if now.tzinfo is None:
        raise ConfigError("now must be a timezone-aware datetime")
    if not isinstance(root, bytes) or not root:
        raise ConfigError("the pinned root is a DER certificate")
    if nonce is not None and (not isinstance(nonce, bytes) or len(nonce) != NONCE_SIZE):
        raise ConfigError(f"a measurement nonce is {NONCE_SIZE} bytes")
    if not isinstance(references, ReferenceValues):
        raise ConfigError("references must be ironroot.attestation.ReferenceValues")
    seen = _Seen()
    error: IronrootError | None = None
    try:
        blocks = _session(send, root, now, nonce, seen)
        components, svn = _layout(blocks, seen)
        compare_device_references(components, svn, references, vendor=vendor, model=model)
    except IronrootError as exc:
        error = exc
    return DeviceMeasurement(
        name=name,
        ok=error is None,
        code=error.code if error is not None else None,
        detail=error.detail if error is not None else "",
        measurements=MappingProxyType(dict(seen.measurements)),
        svn=seen.svn,
        root_hash=seen.root_hash,
        evidence=seen.evidence,
        error=error,
    )


def measure_device(
    device: PlatformDevice,
    firmware: bytes,
    *,
    root: bytes,
    references: ReferenceValues,
    now: datetime,
    nonce: bytes | None = None,
) -> DeviceMeasurement:
    """Measure ``device`` while it holds ``firmware`` over SPDM against the pinned ``root``
    and the logged ``references``; a failing device is reported, not raised."""
    if not isinstance(device, PlatformDevice):
        raise ConfigError("measure_device needs a PlatformDevice")
    return measure_responder(
        device.responder(firmware),
        name=device.name,
        vendor=device.vendor,
        model=device.model,
        root=root,
        references=references,
        now=now,
        nonce=nonce,
    )


def _measure_read(
    device: PlatformDevice,
    read: tuple[bytes, bytes],
    *,
    root: bytes,
    references: ReferenceValues,
    now: datetime,
    nonce: bytes | None = None,
) -> DeviceMeasurement:
    """:func:`measure_device` for firmware as a flash read returned it: ``(bytes, SHA-384 of
    those bytes)`` (the flash read, ``Chip.image``, hashes what it read). The
    measurement blocks are remembered by that digest."""
    if not isinstance(device, PlatformDevice):
        raise ConfigError("_measure_read needs a PlatformDevice")
    firmware, sha384 = read
    if not isinstance(firmware, bytes) or not isinstance(sha384, bytes) or len(sha384) != 48:
        raise ConfigError("a flash read is (image bytes, their SHA-384)")
    return measure_responder(
        Responder(device.identity.key, device.identity.chain, _blocks_of(firmware, sha384)),
        name=device.name,
        vendor=device.vendor,
        model=device.model,
        root=root,
        references=references,
        now=now,
        nonce=nonce,
    )


def verify_device(
    device: PlatformDevice,
    firmware: bytes,
    *,
    root: bytes,
    references: ReferenceValues,
    now: datetime,
    nonce: bytes | None = None,
) -> DeviceMeasurement:
    """:func:`measure_device`, raising the failure's typed error instead of reporting it."""
    result = measure_device(
        device, firmware, root=root, references=references, now=now, nonce=nonce
    )
    if result.error is not None:
        raise result.error
    return result
