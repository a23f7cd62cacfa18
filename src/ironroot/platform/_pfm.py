"""The Platform Firmware Manifest (PFM): which firmware a platform's flash may hold.

As in Project Cerberus, a PFM lists per component (BMC, host UEFI, each device) the firmware
versions allowed, each with its security version number and SHA-384 digest, and the flash
regions the RoT keeps read-only or lets the component write. It is signed by the vendor's
keys of :mod:`ironroot.firmware` — ECDSA P-384 **and** ML-DSA-87, both required — and checked
against the vendor key descriptor hash the RoT's fuses hold, so the same keys that may sign
firmware may say which firmware is allowed, and no one else.

Format. The payload is a deterministic CBOR map::

    {"pfm": 1, "platform": tstr, "svn": uint,
     "components": [{"name": tstr,
                     "versions": [{"version": tstr, "svn": uint, "sha384": bstr .size 48}],
                     "read_only": [[offset, length]], "read_write": [[offset, length]]}]}

signed as a COSE_Sign (tag 98) with content type ``application/vnd.ironroot.pfm+cbor`` and
two signers (ES384, ML-DSA-87; each with its key id). Component names are unique; each
component's versions, and their SHA-384 digests, are unique (one image, one version and
SVN); regions are within 2^32 and do not overlap.

:func:`verify_pfm` checks, in order: the COSE structure and the payload
(``MalformedInput``); the keys given are the fused vendor key descriptor
(``KeyDescriptorMismatch``); one ES384 and one ML-DSA-87 signature verify under those keys
(``MissingSignature``, ``BadSignature``), by a key the fuses do not revoke (``KeyRevoked``:
``ecc_revocation``/``pqc_revocation`` are the fused masks, bit *i* the *i*-th key of the
descriptor); the PFM's SVN is not below the active PFM's
(``SvnRollback``), and a PFM at the active PFM's SVN is that PFM (``SvnRollback`` code
``pfm-svn-reused``). :meth:`Pfm.allows` then decides one firmware image (``FirmwareRejected``
code ``not-in-pfm``).

One SVN, one PFM. The SVN is all the anti-rollback check compares, so two PFMs with one SVN
could be swapped for each other for ever: a vendor that withdraws an image by signing a new
PFM at the same SVN would find the older one, still validly signed and logged, accepted again.
A PFM's SVN is a 64-bit value the RoT journals (not a scarce fuse, like the 128-bit firmware
SVN), so a vendor loses nothing by giving every changed PFM a higher one; the RoT therefore
refuses a PFM with the active PFM's SVN unless it is the active PFM (the same contents again,
re-signed or not).
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from ironroot.cose import (
    CONTENT_TYPE,
    KID,
    CoseSign,
    Limits,
    cose_sign,
    create_statement,
    decode_cbor,
    encode_cbor,
)
from ironroot.crypto import Algorithm, Signer, Verifier
from ironroot.errors import (
    BadSignature,
    FirmwareRejected,
    KeyDescriptorMismatch,
    KeyRevoked,
    MalformedInput,
    MissingSignature,
    SvnRollback,
)
from ironroot.firmware import key_descriptor_hash

__all__ = [
    "MAX_PFM_BYTES",
    "PFM_CONTENT_TYPE",
    "Pfm",
    "PfmComponent",
    "PfmVersion",
    "pfm_statement",
    "sign_pfm",
    "verify_pfm",
]

PFM_CONTENT_TYPE: Final = "application/vnd.ironroot.pfm+cbor"
_FORMAT: Final = 1
MAX_PFM_BYTES: Final = 1024 * 1024
"""The largest PFM, signed or not: a file over it is refused from its size, unread."""
_LIMITS: Final = Limits(max_bytes=MAX_PFM_BYTES, max_depth=8, max_items=65536)
_MAX_OFFSET: Final = 2**32


def _uint(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**64:
        raise MalformedInput(f"{what} is an unsigned integer")
    return value


def _text(value: object, what: str) -> str:
    if not isinstance(value, str) or not value or len(value) > 256:
        raise MalformedInput(f"{what} is text of 1 to 256 characters")
    return value


@dataclass(frozen=True, slots=True)
class PfmVersion:
    """One allowed firmware image of a component."""

    version: str
    svn: int
    sha384: bytes

    def __post_init__(self) -> None:
        _text(self.version, "a version")
        _uint(self.svn, "a version's svn")
        if not isinstance(self.sha384, bytes) or len(self.sha384) != 48:
            raise MalformedInput("a version's sha384 is 48 bytes")


def _regions(value: object, what: str) -> tuple[tuple[int, int], ...]:
    if not isinstance(value, list | tuple):
        raise MalformedInput(f"{what} is a list of [offset, length]")
    out = []
    for item in value:
        if not isinstance(item, list | tuple) or len(item) != 2:
            raise MalformedInput(f"{what} is a list of [offset, length]")
        offset, length = _uint(item[0], f"{what} offset"), _uint(item[1], f"{what} length")
        if length == 0 or offset + length > _MAX_OFFSET:
            raise MalformedInput(f"{what}: a region is non-empty and within 4 GiB")
        out.append((offset, length))
    return tuple(out)


@dataclass(frozen=True, slots=True)
class PfmComponent:
    """A component's allowed versions and its flash regions."""

    name: str
    versions: tuple[PfmVersion, ...]
    read_only: tuple[tuple[int, int], ...] = ()
    read_write: tuple[tuple[int, int], ...] = ()

    def __post_init__(self) -> None:
        _text(self.name, "a component name")
        # The regions are checked as decoding checks them, so that nothing is signed that
        # no verifier would accept (a negative offset, an empty or a 4 GiB-crossing region).
        _regions(self.read_only, "read_only")
        _regions(self.read_write, "read_write")
        if not self.versions:
            raise MalformedInput(f"component {self.name!r} allows no version")
        names = [v.version for v in self.versions]
        if len(set(names)) != len(names):
            raise MalformedInput(f"component {self.name!r} lists a version twice")
        digests = [v.sha384 for v in self.versions]
        if len(set(digests)) != len(digests):
            raise MalformedInput(
                f"component {self.name!r} lists one image (SHA-384) under two versions"
            )
        spans = sorted((*self.read_only, *self.read_write))
        for (a, la), (b, _lb) in itertools.pairwise(spans):
            if a + la > b:
                raise MalformedInput(f"component {self.name!r} has overlapping regions")


@dataclass(frozen=True, slots=True)
class Pfm:
    """A Platform Firmware Manifest (module docs)."""

    platform: str
    svn: int
    components: tuple[PfmComponent, ...]

    def __post_init__(self) -> None:
        _text(self.platform, "the platform")
        _uint(self.svn, "the PFM's svn")
        names = [c.name for c in self.components]
        if len(set(names)) != len(names):
            raise MalformedInput("a component is listed twice")

    def component(self, name: str) -> PfmComponent:
        for component in self.components:
            if component.name == name:
                return component
        raise FirmwareRejected(f"the PFM lists no component {name!r}", code="not-in-pfm")

    def allows(self, component: str, image: bytes) -> PfmVersion:
        """The entry that allows ``image`` for ``component``, or ``FirmwareRejected``
        (``not-in-pfm``): the image's SHA-384 must be one the PFM lists for it."""
        return self.allows_digest(component, hashlib.sha384(image).digest())

    def allows_digest(self, component: str, digest: bytes) -> PfmVersion:
        """:meth:`allows` for an image whose SHA-384 is already known."""
        for version in self.component(component).versions:
            if hmac.compare_digest(version.sha384, digest):
                return version
        raise FirmwareRejected(
            f"the PFM allows no {component} image with SHA-384 {digest.hex()[:16]}…",
            code="not-in-pfm",
        )

    def encode(self) -> bytes:
        return encode_cbor(
            {
                "pfm": _FORMAT,
                "platform": self.platform,
                "svn": self.svn,
                "components": [
                    {
                        "name": c.name,
                        "versions": [
                            {"version": v.version, "svn": v.svn, "sha384": v.sha384}
                            for v in c.versions
                        ],
                        "read_only": [list(r) for r in c.read_only],
                        "read_write": [list(r) for r in c.read_write],
                    }
                    for c in self.components
                ],
            }
        )

    @classmethod
    def decode(cls, payload: bytes) -> Pfm:
        value = decode_cbor(payload, _LIMITS)
        if not isinstance(value, dict) or set(value) != {"pfm", "platform", "svn", "components"}:
            raise MalformedInput("a PFM is a map of pfm, platform, svn and components")
        # an integer, not whatever compares equal to one (true, 1.0): one PFM, one encoding
        if type(value["pfm"]) is not int or value["pfm"] != _FORMAT:
            raise MalformedInput(f"unknown PFM format {value['pfm']!r}")
        components = value["components"]
        if not isinstance(components, list):
            raise MalformedInput("the PFM's components are a list")
        return cls(
            platform=_text(value["platform"], "the platform"),
            svn=_uint(value["svn"], "the PFM's svn"),
            components=tuple(_component(c) for c in components),
        )


def _component(value: object) -> PfmComponent:
    keys = {"name", "versions", "read_only", "read_write"}
    if not isinstance(value, dict) or set(value) != keys:
        raise MalformedInput("a PFM component is a map of name, versions and regions")
    versions = value["versions"]
    if not isinstance(versions, list):
        raise MalformedInput("a component's versions are a list")
    parsed = []
    for v in versions:
        if not isinstance(v, dict) or set(v) != {"version", "svn", "sha384"}:
            raise MalformedInput("a PFM version is a map of version, svn and sha384")
        parsed.append(PfmVersion(v["version"], v["svn"], v["sha384"]))
    return PfmComponent(
        name=_text(value["name"], "a component name"),
        versions=tuple(parsed),
        read_only=_regions(value["read_only"], "read_only"),
        read_write=_regions(value["read_write"], "read_write"),
    )


def sign_pfm(pfm: Pfm, ecc_key: Signer, pqc_key: Signer) -> bytes:
    """The signed PFM: a COSE_Sign by the vendor's ECDSA P-384 and ML-DSA-87 keys."""
    if ecc_key.algorithm is not Algorithm.ES384 or pqc_key.algorithm is not Algorithm.ML_DSA_87:
        raise MalformedInput("a PFM is signed with an ES384 key and an ML-DSA-87 key")
    return cose_sign(
        [ecc_key, pqc_key],
        pfm.encode(),
        {CONTENT_TYPE: PFM_CONTENT_TYPE},
        signer_headers=[({KID: ecc_key.kid}, {}), ({KID: pqc_key.kid}, {})],
    ).encode()


def _verified_by(
    message: CoseSign, keys: Sequence[Verifier], algorithm: Algorithm, revocation: int
) -> None:
    signatures = [s for s in message.signatures if s.algorithm is algorithm]
    if not signatures:
        raise MissingSignature(f"the PFM has no {algorithm.label} signature")
    by_kid: Mapping[bytes, Verifier] = {k.kid: k for k in keys if k.algorithm is algorithm}
    revoked = {k.kid: i for i, k in enumerate(keys) if revocation >> i & 1}
    for signature in signatures:
        if (signature.kid or b"") in revoked:
            raise KeyRevoked(
                f"the PFM's {algorithm.label} signature is by vendor key "
                f"{revoked[signature.kid or b'']}, which the fuses revoke"
            )
        key = by_kid.get(signature.kid or b"")
        if key is not None:
            message.verify_signature(signature, key)
            return
    raise BadSignature(f"no {algorithm.label} signature of the PFM is by a vendor key")


def verify_pfm(
    data: bytes,
    *,
    ecc_keys: Sequence[Verifier],
    pqc_keys: Sequence[Verifier],
    vendor_key_hash: bytes,
    min_svn: int = 0,
    ecc_revocation: int = 0,
    pqc_revocation: int = 0,
    active: Pfm | None = None,
) -> Pfm:
    """The PFM in ``data`` once every check of the module docs passed, or the first refusal.

    ``active`` is the PFM in force, if any: the new PFM's SVN must not be below its SVN (nor
    below ``min_svn``), and at its SVN the new PFM must be it."""
    message = CoseSign.decode(bytes(data), _LIMITS)
    if message.protected.get(CONTENT_TYPE) != PFM_CONTENT_TYPE:
        raise MalformedInput(f"not a PFM (content type {PFM_CONTENT_TYPE})")
    if message.payload is None:
        raise MalformedInput("a PFM carries its payload")
    pfm = Pfm.decode(message.payload)
    descriptor = key_descriptor_hash(ecc_keys, pqc_keys, "mldsa")
    if not hmac.compare_digest(descriptor, vendor_key_hash):
        raise KeyDescriptorMismatch("the keys given are not the vendor keys the fuses name")
    _verified_by(message, ecc_keys, Algorithm.ES384, ecc_revocation)
    _verified_by(message, pqc_keys, Algorithm.ML_DSA_87, pqc_revocation)
    floor = min_svn if active is None else max(min_svn, active.svn)
    if pfm.svn < floor:
        raise SvnRollback(f"the PFM's svn {pfm.svn} is below the active PFM's {floor}")
    if active is not None and pfm.svn == active.svn and pfm != active:
        raise SvnRollback(
            f"the PFM has the active PFM's svn {pfm.svn} but other contents: "
            "a changed PFM takes a higher svn",
            code="pfm-svn-reused",
        )
    return pfm


def pfm_statement(signed_pfm: bytes, signer: Signer, *, iss: str, sub: str) -> bytes:
    """A SCITT Signed Statement carrying a signed PFM (content type :data:`PFM_CONTENT_TYPE`),
    for registration on the transparency service: a PFM, like firmware, is in force only once
    it is on the log. The PFM is parsed first, so nothing malformed is published."""
    message = CoseSign.decode(bytes(signed_pfm), _LIMITS)
    if message.protected.get(CONTENT_TYPE) != PFM_CONTENT_TYPE or message.payload is None:
        raise MalformedInput("not a signed PFM")
    Pfm.decode(message.payload)
    return create_statement(
        signer, bytes(signed_pfm), iss=iss, sub=sub, content_type=PFM_CONTENT_TYPE
    )
