"""Publish a signed bundle to a transparency service (the outer, I/O half of publication).

``publish_bundle`` checks the bundle against the product's fused key descriptor hash (or its
own key descriptors) and revocation masks, both signatures, the TOC and every component
digest (a vendor never publishes a bundle that no device would accept), registers the
manifest statement and the reference-value statement through any client with
``register(statement)`` (``ironroot.transparency.TransparencyClient``), and returns both
transparent statements. ``write_published`` stores them next to the bundle as
``<name>.manifest.ts`` and ``<name>.corim.ts``: they ship with the update.

The client is typed structurally, so this package does not import the transparency layer.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from ironroot._fileio import write_atomic
from ironroot.crypto import Signer, Verifier
from ironroot.errors import ConfigError, StateReuse
from ironroot.firmware._leaves import check_lms_leaf_reuse, leaf_reuse, logged_leaves
from ironroot.firmware._logged import logged_lms_leaves, verify_logged_statement
from ironroot.firmware._manifest import DEFAULT_LIMITS, FirmwareBundle, FirmwareLimits
from ironroot.firmware._reference import manifest_statement, reference_statement
from ironroot.firmware._verify import BundlePolicy, verify_bundle

__all__ = ["PublishedFirmware", "publish_bundle", "write_published"]


class _Registration(Protocol):
    @property
    def entry_id(self) -> str: ...

    @property
    def transparent_statement(self) -> bytes: ...


class _Registrar(Protocol):
    def register(self, statement: bytes) -> _Registration: ...


@dataclass(frozen=True, slots=True)
class PublishedFirmware:
    """The two registered statements of one release, with their transparent forms."""

    manifest_digest: bytes
    manifest_entry_id: str
    manifest_statement: bytes
    corim_entry_id: str
    corim_statement: bytes


def publish_bundle(
    bundle: bytes,
    client: _Registrar,
    signer: Signer,
    *,
    iss: str,
    sub: str,
    vendor: str | None = None,
    model: str | None = None,
    limits: FirmwareLimits = DEFAULT_LIMITS,
    now: dt.datetime | None = None,
    vendor_key_descriptor_hash: bytes | None = None,
    ecc_revocation: int = 0,
    pqc_revocation: int = 0,
    published: Iterable[bytes] = (),
    logged: Iterable[bytes] = (),
    service_keys: Mapping[bytes, Verifier] | None = None,
    service_issuer: str | None = None,
    issuer_keys: Iterable[Verifier] = (),
) -> PublishedFirmware:
    """Self-check ``bundle``, then register its manifest and reference-value statements.

    ``vendor_key_descriptor_hash`` is the product's fused hash: a bundle whose key
    descriptors are not the product's is ``KeyDescriptorMismatch`` and nothing is registered.
    Without it the bundle is checked against the descriptors it carries, which proves only
    that it is self-consistent, not that the product's firmware keys signed it.

    ``ecc_revocation`` and ``pqc_revocation`` are the product's revocation fuses, the 4-bit
    ECC and 32-bit PQC masks of :class:`BundlePolicy` (``ironroot rot fuse revoke-ecc`` /
    ``revoke-pqc`` set their bits): a bundle whose active vendor key has its bit set is
    ``KeyRevoked`` and nothing is registered, since no device with those fuses boots it; a
    mask wider than its fuse is ``ConfigError``.

    The bundle is verified at the first instant a device accepts it (the later of the vendor
    and owner not-before), or at ``now`` if that is later: a release may be published ahead
    of its dates, but not once its validity has ended at ``now``, nor when its vendor and
    owner windows never overlap (``ManifestExpired``; nothing is registered).

    ``published``: the product's earlier release bundles. An LMS signature of ``bundle`` made
    with a leaf one of them (or ``bundle`` itself) signed with already is ``StateReuse``
    and nothing is registered (:func:`check_lms_leaf_reuse`).

    ``logged``: the product's earlier manifest statements (Transparent Statements: the
    ``<name>.manifest.ts`` of earlier releases), which name their LMS leaves
    (:func:`logged_lms_leaves`). Each is verified first (:func:`verify_logged_statement`):
    every receipt under ``service_keys`` (naming ``service_issuer`` when given, issued no
    later than the clock), its signature under the one of ``issuer_keys`` its ``kid`` names
    (default: ``signer``'s own key). ``logged`` without ``service_keys`` is ``ConfigError``
    (fail closed: unchecked statements are not read as logged); a statement without a
    receipt is ``PolicyRejected`` ``no-receipt``, one whose receipt is another service's
    ``UnknownIssuer`` ``untrusted-service``, another statement's ``InvalidProof``
    ``receipt-not-for-statement``, one by another signer ``UnknownIssuer``
    ``unknown-issuer``, a bad signature ``BadSignature``; nothing is registered. A leaf of
    one of ``bundle``'s LMS keys used for two different signatures among them and ``bundle``
    is ``StateReuse`` and nothing is registered — whether ``bundle`` is the second use or
    the log already shows one: a key with a reused leaf is forgeable, revoke it rather than
    sign more with it. A statement that is no manifest statement, or whose leaves header is
    malformed, is ``MalformedStatement``. Statements registered before the header have no
    leaves to compare: give their bundles as ``published``.
    """
    if now is not None and (not isinstance(now, dt.datetime) or now.tzinfo is None):
        raise ConfigError("now must be a timezone-aware datetime")
    logged, trusted = list(logged), dict(service_keys or {})
    if logged and not trusted:
        raise ConfigError(
            "logged statements are read only once their receipts verify: give the"
            " transparency service's keys (service_keys=)"
        )
    parsed = FirmwareBundle.parse(bundle, limits)
    if vendor_key_descriptor_hash is None:
        vendor_key_descriptor_hash = hashlib.sha384(
            parsed.manifest.preamble.descriptors_bytes()
        ).digest()
    header = parsed.manifest.header
    opens = max(header.not_before, header.owner_not_before or header.not_before)
    verify_bundle(
        bundle,
        BundlePolicy(
            now=opens if now is None or now < opens else now,
            vendor_key_descriptor_hash=vendor_key_descriptor_hash,
            ecc_revocation=ecc_revocation,
            pqc_revocation=pqc_revocation,
            limits=limits,
        ),
    )
    if logged:
        issuers = tuple(issuer_keys) or (signer.verifier(),)
        for statement in logged:  # the receipts against this clock: ``now`` judges the bundle
            verify_logged_statement(
                statement, trusted, issuers, service_issuer=service_issuer, now=time.time()
            )
    check_lms_leaf_reuse([*published, bundle], limits=limits)
    _check_logged_leaves(bundle, logged, limits)
    manifest = client.register(manifest_statement(bundle, signer, iss=iss, sub=sub, limits=limits))
    corim = client.register(
        reference_statement(
            bundle, signer, iss=iss, sub=sub, vendor=vendor, model=model, limits=limits
        )
    )
    return PublishedFirmware(
        manifest_digest=parsed.manifest_digest(),
        manifest_entry_id=manifest.entry_id,
        manifest_statement=manifest.transparent_statement,
        corim_entry_id=corim.entry_id,
        corim_statement=corim.transparent_statement,
    )


def _check_logged_leaves(bundle: bytes, logged: Iterable[bytes], limits: FirmwareLimits) -> None:
    """``StateReuse`` when ``logged`` and ``bundle`` show a leaf of one of ``bundle``'s LMS
    keys used for two signatures (every statement is read, whatever ``bundle`` holds)."""
    earlier = [leaf for statement in logged for leaf in logged_lms_leaves(statement)]
    own = logged_leaves(bundle, limits)
    keys = {leaf.key_hash for leaf in own}
    for reuse in leaf_reuse([*earlier, *own]):
        if reuse.first.key_hash in keys:
            raise StateReuse(reuse.detail)


def write_published(published: PublishedFirmware, out_dir: Path, name: str) -> tuple[Path, Path]:
    """Write ``<name>.manifest.ts`` and ``<name>.corim.ts`` into ``out_dir``; return the paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    manifest_path = out_dir / f"{name}.manifest.ts"
    corim_path = out_dir / f"{name}.corim.ts"
    write_atomic(manifest_path, published.manifest_statement)
    write_atomic(corim_path, published.corim_statement)
    return manifest_path, corim_path
