"""What a vendor publishes about a bundle: a manifest statement and a reference-value CoRIM.

Pure: bundle bytes and a signer in, Signed Statement bytes out.

* :func:`manifest_statement` — a hash-envelope Signed Statement (RFC 9995): the payload is
  the SHA-384 of the manifest (header ``258`` = ``-43``), preimage content type
  ``application/vnd.ironroot.firmware-manifest`` (``259``), ``iss`` the vendor and ``sub``
  the product. The manifest is the bundle's first ``manifest.size`` bytes, signatures
  included, so its digest names exactly one signed release (and, through the TOC, every
  component). An LMS release's statement also names each LMS signature's key hash, leaf,
  message and signature hash in its protected header ``ironroot-lms-leaves``
  (:data:`~ironroot.firmware.LMS_LEAVES_HEADER`), so that a monitor sees a one-time key
  used twice from the log alone (:func:`~ironroot.firmware.find_lms_leaf_reuse`).
* :func:`reference_corim` — a CoRIM with one CoMID whose reference-value triples give the
  expected measurements: for each component an environment ``{vendor, model, layer, index}``
  (FMC layer 0, runtime layer 1, any other component layer 2; index = component id) and a
  measurement ``{mkey: "fmc" | "runtime" | "component-<id>", mval: {version, svn:
  552(SVN), digests: [[7 (SHA-384), digest]]}}``; the RIM validity is the manifest's. The SVN
  is the header's, exact (``552``, not a ``553`` minimum): a release is one signed manifest
  stating one SVN, and the component digests do not cover that header, so evidence of these
  digests claiming another SVN is of a header nobody logged (``executables`` 33 in
  appraisal). It still counts as the floor of its environment
  (:meth:`ironroot.attestation.ReferenceValues.minimum_svn`). The CoMID's tag-version is 1:
  publishing a bundle again replaces the CoMID of minimum SVNs (tag-version 0) that Ironroot
  published for it before. The manifest carries no names,
  so vendor and model default to ``iss`` and ``sub``.
* :func:`reference_statement` — that CoRIM as the payload of a Signed Statement with content
  type ``application/rim+cbor``.
"""

from __future__ import annotations

import uuid
from typing import Final

from ironroot.corim import (
    CORIM_CONTENT_TYPE,
    HASH_ALG_SHA384,
    ClassMap,
    Comid,
    Corim,
    Digest,
    Entity,
    Environment,
    Measurement,
    MeasurementValues,
    Svn,
    TagIdentity,
    Triple,
    Triples,
    Validity,
    Version,
)
from ironroot.cose import HASH_SHA384, create_statement
from ironroot.crypto import Signer
from ironroot.firmware._leaves import LMS_LEAVES_HEADER, logged_leaves
from ironroot.firmware._manifest import (
    DEFAULT_LIMITS,
    FMC_ID,
    RUNTIME_ID,
    FirmwareBundle,
    FirmwareLimits,
)

__all__ = [
    "MANIFEST_CONTENT_TYPE",
    "manifest_statement",
    "reference_corim",
    "reference_statement",
]

MANIFEST_CONTENT_TYPE: Final = "application/vnd.ironroot.firmware-manifest"
_ROLE_TAG_CREATOR: Final = 0
_ROLE_CREATOR: Final = 1
_ROLE_MANIFEST_CREATOR: Final = 1


def manifest_statement(
    bundle: bytes,
    signer: Signer,
    *,
    iss: str,
    sub: str,
    limits: FirmwareLimits = DEFAULT_LIMITS,
) -> bytes:
    """A hash-envelope Signed Statement over the SHA-384 of the bundle's manifest; for an LMS
    bundle, its LMS signatures' keys and leaves in the protected header
    :data:`~ironroot.firmware.LMS_LEAVES_HEADER`."""
    parsed = FirmwareBundle.parse(bundle, limits)
    leaves = logged_leaves(bundle, limits)
    return create_statement(
        signer,
        parsed.manifest.encode(),
        iss=iss,
        sub=sub,
        hash_envelope=True,
        hash_alg=HASH_SHA384,
        preimage_content_type=MANIFEST_CONTENT_TYPE,
        headers={LMS_LEAVES_HEADER: [leaf.header_item() for leaf in leaves]} if leaves else None,
    )


def _component_name(component_id: int) -> str:
    return {FMC_ID: "fmc", RUNTIME_ID: "runtime"}.get(component_id, f"component-{component_id}")


def _layer(component_id: int) -> int:
    return {FMC_ID: 0, RUNTIME_ID: 1}.get(component_id, 2)


_TAG_VERSION: Final = 1
"""The CoMID's ``tag-version``: 1 since release CoRIMs state exact SVNs. The CoMID Ironroot
published for the same bundle before (the same tag-id, no tag-version: 0) stated minimum
SVNs; publishing the bundle again replaces it, as a greater tag-version of one tag-id does."""


def reference_corim(
    bundle: bytes,
    *,
    vendor: str,
    model: str,
    limits: FirmwareLimits = DEFAULT_LIMITS,
) -> Corim:
    """The expected measurements of ``bundle`` as a CoRIM (see the module docstring)."""
    parsed = FirmwareBundle.parse(bundle, limits)
    manifest = parsed.manifest
    header = manifest.header
    digest_hex = parsed.manifest_digest().hex()
    triples = tuple(
        Triple(
            Environment(
                ClassMap(
                    vendor=vendor,
                    model=model,
                    layer=_layer(entry.component_id),
                    index=entry.component_id,
                )
            ),
            (
                Measurement(
                    MeasurementValues(
                        version=Version(str(entry.version)),
                        svn=Svn(header.svn),
                        digests=(Digest(HASH_ALG_SHA384, entry.digest),),
                    ),
                    mkey=_component_name(entry.component_id),
                ),
            ),
        )
        for entry in manifest.toc
    )
    reg_id = vendor if ":" in vendor else None
    comid = Comid(
        tag_identity=TagIdentity(
            uuid.uuid5(uuid.NAMESPACE_URL, f"{model}#comid#{digest_hex}").bytes,
            version=_TAG_VERSION,
        ),
        triples=Triples(reference=triples),
        entities=(Entity(vendor, (_ROLE_TAG_CREATOR, _ROLE_CREATOR), reg_id),),
    )
    return Corim(
        id=uuid.uuid5(uuid.NAMESPACE_URL, f"{model}#corim#{digest_hex}").bytes,
        tags=(comid,),
        rim_validity=Validity(
            not_after=int(header.not_after.timestamp()),
            not_before=int(header.not_before.timestamp()),
        ),
        entities=(Entity(vendor, (_ROLE_MANIFEST_CREATOR,), reg_id),),
    )


def reference_statement(
    bundle: bytes,
    signer: Signer,
    *,
    iss: str,
    sub: str,
    vendor: str | None = None,
    model: str | None = None,
    limits: FirmwareLimits = DEFAULT_LIMITS,
) -> bytes:
    """A Signed Statement whose payload is :func:`reference_corim` (``application/rim+cbor``)."""
    corim = reference_corim(bundle, vendor=vendor or iss, model=model or sub, limits=limits)
    return create_statement(
        signer, corim.encode(), iss=iss, sub=sub, content_type=CORIM_CONTENT_TYPE
    )
