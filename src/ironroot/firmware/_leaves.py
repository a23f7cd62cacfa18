"""LMS one-time keys across releases: which leaf each signature used, and reuse between them.

An LMS key signs each message with a one-time key, the leaf ``q`` its signature names (its
first four bytes). Two signatures by one key with one leaf over different messages (or with a
different randomizer ``C``) let anyone forge that leaf's signatures. A verifier given one
bundle cannot see this: each signature is valid on its own. A set of signed releases can:
:func:`check_lms_leaf_reuse` finds two LMS signatures that verify under one key with one leaf
and differ (``StateReuse``). Pure: bundle bytes in.

The transparency log cannot be asked instead: a release's manifest statement logs the SHA-384
of the manifest (a hash envelope) and its CoRIM the component digests, so neither the LMS key,
nor the leaf, nor the signature is on the log. ``publish_bundle(..., published=)`` checks a
release against the product's earlier release bundles before it registers anything.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from ironroot.errors import BadSignature, StateReuse
from ironroot.firmware._keys import key_hash, pqc_verifier
from ironroot.firmware._manifest import DEFAULT_LIMITS, FirmwareBundle, FirmwareLimits, PqcKeyType

__all__ = ["LmsLeaf", "check_lms_leaf_reuse", "lms_leaves"]


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
                    f"LMS key {leaf.key_hash.hex()[:16]}… signed with leaf {leaf.leaf} twice:"
                    f" as {first.role} of manifest {first.manifest_digest.hex()[:16]}… and as"
                    f" {leaf.role} of manifest {leaf.manifest_digest.hex()[:16]}… (a restored"
                    " or copied signer state); that leaf's signatures can be forged"
                )
