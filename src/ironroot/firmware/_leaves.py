"""LMS one-time keys across releases: which leaf each signature used, and reuse between them.

An LMS key signs each message with a one-time key, the leaf ``q`` its signature names (its
first four bytes). Two signatures by one key with one leaf over different messages (or with a
different randomizer ``C``) let anyone forge that leaf's signatures. A verifier given one
bundle cannot see this: each signature is valid on its own. A set of signed releases can:
:func:`check_lms_leaf_reuse` finds two LMS signatures that verify under one key with one leaf
and differ (``StateReuse``). Pure: bundle bytes in.

So can the transparency log, since a release's manifest statement names each LMS signature's
key, leaf, message and signature hash in its protected header :data:`LMS_LEAVES_HEADER`
(:func:`logged_leaves` gives them, :func:`leaf_reuse` compares them;
:mod:`ironroot.firmware._logged` reads them back from statements).
``publish_bundle(..., published=)`` checks a release against the product's earlier release
bundles before it registers anything, ``logged=`` against their manifest statements.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final, NamedTuple

from ironroot.errors import BadSignature, StateReuse
from ironroot.firmware._keys import key_hash, pqc_verifier
from ironroot.firmware._manifest import DEFAULT_LIMITS, FirmwareBundle, FirmwareLimits, PqcKeyType

__all__ = [
    "LMS_LEAVES_HEADER",
    "LmsLeaf",
    "LmsLeafReuse",
    "LoggedLmsLeaf",
    "check_lms_leaf_reuse",
    "leaf_reuse",
    "lms_leaves",
    "logged_leaves",
    "reuse_detail",
]

LMS_LEAVES_HEADER: Final = "ironroot-lms-leaves"
"""The manifest statement's protected header label (text, RFC 9052 §3.1) listing its LMS
signatures: an array of one or two maps ``{"role": "vendor" | "owner", "key-hash": SHA-384
of the LMS key, "leaf": q (uint32), "message": the header digest it signed, "signature-hash":
SHA-384 of the signature as stored}``, vendor first. Absent for ML-DSA-87 releases and in
statements registered before it was added."""


@dataclass(frozen=True, slots=True)
class LmsLeaf:
    """One LMS signature of a manifest: who made it, the key's hash, the leaf it used."""

    role: str
    """``"vendor"`` or ``"owner"``."""
    key_hash: bytes
    """SHA-384 of the stored LMS key (as the descriptor and the owner key hash have it)."""
    leaf: int
    signature: bytes
    manifest_digest: bytes


def lms_leaves(bundle: bytes, limits: FirmwareLimits = DEFAULT_LIMITS) -> tuple[LmsLeaf, ...]:
    """The LMS signatures of ``bundle`` that verify over its header (vendor, then owner); none
    for an ML-DSA-87 bundle. ``MalformedFirmware``/``LimitExceeded`` if it does not parse.

    A signature that does not verify proves nothing about its key's leaves and is left out.
    """
    parsed = FirmwareBundle.parse(bundle, limits)
    if parsed.manifest.pqc_key_type is not PqcKeyType.LMS:
        return ()
    pre = parsed.manifest.preamble
    digest, manifest_digest = parsed.header_digest(), parsed.manifest_digest()
    signed = [("vendor", pre.vendor_pqc_key, pre.vendor_pqc_signature)]
    if pre.has_owner:
        signed.append(("owner", pre.owner_pqc_key, pre.owner_pqc_signature))
    out = []
    for role, key, signature in signed:
        if len(signature) < 4:
            continue
        try:
            pqc_verifier(key, PqcKeyType.LMS).verify(b"\0\0\0\0" + signature, digest)
        except BadSignature:
            continue
        leaf = int.from_bytes(signature[:4], "big")
        out.append(LmsLeaf(role, key_hash(key), leaf, signature, manifest_digest))
    return tuple(out)


@dataclass(frozen=True, slots=True)
class LoggedLmsLeaf:
    """One LMS signature as a manifest statement logs it (:data:`LMS_LEAVES_HEADER`)."""

    role: str
    """``"vendor"`` or ``"owner"``."""
    key_hash: bytes
    """SHA-384 of the stored LMS key (as the key descriptor lists it)."""
    leaf: int
    """The one-time key ``q`` the signature used."""
    message: bytes
    """What it signed: the manifest's header digest."""
    signature_hash: bytes
    """SHA-384 of the LMS signature as the manifest stores it."""
    manifest_digest: bytes
    """SHA-384 of the manifest the signature is in (the statement's payload)."""

    def header_item(self) -> dict[str, object]:
        """This leaf as one map of :data:`LMS_LEAVES_HEADER`."""
        return {
            "role": self.role,
            "key-hash": self.key_hash,
            "leaf": self.leaf,
            "message": self.message,
            "signature-hash": self.signature_hash,
        }


def logged_leaves(
    bundle: bytes, limits: FirmwareLimits = DEFAULT_LIMITS
) -> tuple[LoggedLmsLeaf, ...]:
    """``bundle``'s LMS signatures that verify (:func:`lms_leaves`) as its manifest statement
    logs them; none for an ML-DSA-87 bundle."""
    parsed = FirmwareBundle.parse(bundle, limits)
    message, manifest_digest = parsed.header_digest(), parsed.manifest_digest()
    return tuple(
        LoggedLmsLeaf(
            role=leaf.role,
            key_hash=leaf.key_hash,
            leaf=leaf.leaf,
            message=message,
            signature_hash=hashlib.sha384(leaf.signature).digest(),
            manifest_digest=manifest_digest,
        )
        for leaf in lms_leaves(bundle, limits)
    )


class LmsLeafReuse(NamedTuple):
    """One key's leaf used for a second signature: its first use and the later one."""

    first: LoggedLmsLeaf
    later: LoggedLmsLeaf

    @property
    def detail(self) -> str:
        """What ``StateReuse`` says of it."""
        first, later = self
        return reuse_detail(
            first.key_hash,
            first.leaf,
            (first.role, first.manifest_digest),
            (later.role, later.manifest_digest),
        )


def leaf_reuse(leaves: Iterable[LoggedLmsLeaf]) -> tuple[LmsLeafReuse, ...]:
    """Each later use of a key's leaf with another signature, beside that leaf's first use
    (in the order given); one signature seen twice is one use."""
    first: dict[tuple[bytes, int], LoggedLmsLeaf] = {}
    seen: set[tuple[bytes, int, bytes]] = set()
    out: list[LmsLeafReuse] = []
    for leaf in leaves:
        use = (leaf.key_hash, leaf.leaf, leaf.signature_hash)
        if use in seen:
            continue
        seen.add(use)
        earlier = first.setdefault((leaf.key_hash, leaf.leaf), leaf)
        if earlier is not leaf:
            out.append(LmsLeafReuse(earlier, leaf))
    return tuple(out)


def reuse_detail(
    key_hash: bytes, leaf: int, first: tuple[str, bytes], second: tuple[str, bytes]
) -> str:
    """The ``StateReuse`` detail of one leaf of one key used twice: ``first`` and ``second``
    are each a signature's role and the digest of the manifest it is in."""
    return (
        f"LMS key {key_hash.hex()[:16]}… signed with leaf {leaf} twice: as {first[0]} of"
        f" manifest {first[1].hex()[:16]}… and as {second[0]} of manifest"
        f" {second[1].hex()[:16]}… (a restored or copied signer state); that leaf's"
        " signatures can be forged"
    )


def check_lms_leaf_reuse(
    bundles: Iterable[bytes], *, limits: FirmwareLimits = DEFAULT_LIMITS
) -> None:
    """``StateReuse`` if two verifying LMS signatures among ``bundles`` (within one bundle or
    across them) were made by one key with one leaf and differ; a bundle given twice, or
    one signature seen twice, is no reuse."""
    seen: dict[tuple[bytes, int], LmsLeaf] = {}
    for bundle in bundles:
        for leaf in lms_leaves(bundle, limits):
            first = seen.setdefault((leaf.key_hash, leaf.leaf), leaf)
            if first.signature != leaf.signature:
                raise StateReuse(
                    reuse_detail(
                        leaf.key_hash,
                        leaf.leaf,
                        (first.role, first.manifest_digest),
                        (leaf.role, leaf.manifest_digest),
                    )
                )
