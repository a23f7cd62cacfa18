"""The ``spdm:<device>`` steps of an audit check (10 in :mod:`ironroot.audit._verify`).

Each device's SPDM evidence verifies to the root the platform pinned, answers the nonce
derived from the sealed export nonce, and reports exactly the measurements of its active
image, which are the reference values logged for it. The pinned root (:func:`pinned_root`)
is read by the ``attestation`` step too.
"""

from __future__ import annotations

import base64
import binascii

from ironroot.audit._context import Context
from ironroot.audit._export import spdm_nonce
from ironroot.errors import EndorsementMismatch, MalformedInput
from ironroot.platform import (
    DEVICE_MODE_INDEX,
    DEVICE_SVN_INDEX,
    compare_device_references,
    device_measurement_blocks,
    device_references,
)
from ironroot.spdm import MeasurementBlock, verify_spdm_evidence

__all__ = ["check_spdm", "pinned_root"]


def pinned_root(ctx: Context, device: str) -> tuple[bytes, str, str]:
    """The SPDM root the platform pinned for ``device``, and the device's vendor and model."""
    config = ctx.json("platform/config.json")
    try:
        info = config["devices"][device]
        root = base64.b64decode(info["root"], validate=True)
        vendor, model = str(info["vendor"]), str(info["model"])
    except (KeyError, TypeError, ValueError, binascii.Error) as exc:
        raise MalformedInput(f"platform/config.json pins no root for {device}") from exc
    return root, vendor, model


def check_spdm(ctx: Context, device: str) -> list[str]:
    root, vendor, model = pinned_root(ctx, device)
    evidence = ctx.member(f"spdm/{device}.cbor")
    image = ctx.image(device)
    verified = verify_spdm_evidence(
        evidence, nonce=spdm_nonce(ctx.index.nonce, device), root_certificate=root, now=ctx.at
    )
    reported = {(b.index, b.value) for b in verified.blocks if isinstance(b, MeasurementBlock)}
    expected = {(b.index, b.value) for b in device_measurement_blocks(image)}
    if reported != expected or len(reported) != len(verified.blocks):
        raise EndorsementMismatch(
            f"{device} does not report the measurements of its active image",
            code="measurement-mismatch",
        )
    # the DeviceMode block is compared above with the platform's (debug off): not a component
    digests = {i: v for i, v in expected if i not in (DEVICE_SVN_INDEX, DEVICE_MODE_INDEX)}
    svn_values = [v for i, v in expected if i == DEVICE_SVN_INDEX]
    if not svn_values:
        raise EndorsementMismatch(f"{device} reports no SVN", code="measurement-missing")
    svn = int.from_bytes(svn_values[0], "little")
    references = device_references(
        ctx.statements(device),
        trust_service_keys=ctx.trust.platform.service_keys,
        service_issuer=ctx.trust.platform.service_issuer,
        issuers=ctx.trust.platform.issuers_of(device),
        vendor=vendor,
        model=model,
        now=ctx.at,
    )
    compare_device_references(digests, svn, references, vendor=vendor, model=model)
    return [
        f"SPDM {verified.connection.version.label} session signed by "
        f"{verified.leaf.subject.rfc4514_string()}, chained to the root the platform pinned",
        "answers the challenge derived from the sealed export nonce",
        f"{len(digests)} firmware measurement(s) + SVN {svn}: exactly its active image, and "
        f"the reference values {vendor} logged for {model}",
    ]
