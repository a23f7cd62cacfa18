"""The integrity steps of an audit check (2 and 3 in :mod:`ironroot.audit._verify`).

``seal``: the seal is a quote of the node's RoT over the index, which must verify and be
byte for byte as the RoT made it (:func:`check_seal`); ``members``: every sealed member must be
one some later step reads (:func:`unread_members`). The ``format`` step is
:meth:`ironroot.audit.AuditBundle.parse`.
"""

from __future__ import annotations

import datetime as dt
import hmac
import re
from typing import Final

from ironroot.audit._bundle import AuditBundle, AuditIndex, seal_nonce
from ironroot.audit._context import SEAL_LIMITS, cn, rejected
from ironroot.audit._export import credential_ear_members
from ironroot.audit._trust import AuditTrust
from ironroot.cose import X5CHAIN, Sign1, decode_cbor, encode_cbor
from ironroot.crypto import Algorithm, ecdsa_low_s
from ironroot.errors import IronrootError, MalformedInput
from ironroot.fleet import PLANES
from ironroot.hsm import parse_segment_name
from ironroot.platform import COMPONENTS, DEVICES
from ironroot.rot import QuoteClaims, verify_quote

__all__ = ["check_seal", "unread_members"]


def _claimed_nonces(seal: bytes) -> tuple[bytes, bytes]:
    """The nonce each of the seal's two messages claims, before anything is verified: only to
    tell a changed index (both claim another nonce) from a changed seal (they disagree)."""
    try:
        container = decode_cbor(seal, SEAL_LIMITS)
        if not isinstance(container, dict):
            raise MalformedInput("the seal is not a quote map")
        nonces = []
        for name in ("es384", "ml-dsa-87"):
            message = Sign1.decode(container[name], SEAL_LIMITS)
            claims = decode_cbor(message.payload or b"", SEAL_LIMITS)
            if not isinstance(claims, dict) or not isinstance(claims.get("nonce"), bytes):
                raise MalformedInput("the seal's claims carry no nonce")
            nonces.append(claims["nonce"])
    except (IronrootError, KeyError, TypeError) as exc:
        detail = exc.detail if isinstance(exc, IronrootError) else "it lacks a message"
        raise rejected("seal-invalid", f"the seal is not a quote: {detail}") from exc
    return nonces[0], nonces[1]


def _as_sealed(seal: bytes) -> None:
    """The verified seal is byte for byte as the RoT made it: deterministic CBOR, nothing
    in a message's unprotected header (which no signature covers) but its x5chain, and its
    ECDSA signature in the low-S form the RoT signs in (:func:`ironroot.crypto.ecdsa_low_s`).
    Without this, a header parameter added, a length spelled longer or the signature
    ``(r, s)`` replaced by its twin ``(r, n - s)``, which anyone can compute and which
    verifies as well, changed the file unseen."""
    container = decode_cbor(seal, SEAL_LIMITS)
    if not isinstance(container, dict):  # verify_quote has parsed it: never
        raise rejected("seal-invalid", "the seal is not a quote map")
    rebuilt = dict(container)
    for name, algorithm in (("es384", Algorithm.ES384), ("ml-dsa-87", Algorithm.ML_DSA_87)):
        message = Sign1.decode(container[name], SEAL_LIMITS)
        if set(message.unprotected) != {X5CHAIN}:
            raise rejected(
                "seal-invalid",
                f"the seal's {name} message carries unsigned header parameters besides its "
                "x5chain: it was changed after the RoT made it",
            )
        if ecdsa_low_s(algorithm, message.signature) != message.signature:
            raise rejected(
                "seal-invalid",
                f"the seal's {name} signature is not in its low-S form: it was changed after "
                "the RoT made it",
            )
        rebuilt[name] = message.encode()
    if encode_cbor(rebuilt) != seal:
        raise rejected(
            "seal-invalid",
            "the seal is not in its deterministic encoding: it was changed after the RoT made it",
        )


def check_seal(
    bundle: AuditBundle, trust: AuditTrust, at: dt.datetime | None
) -> tuple[AuditIndex, QuoteClaims, list[str]]:
    expected = seal_nonce(bundle.index)
    ecc_nonce, mldsa_nonce = _claimed_nonces(bundle.seal)
    if not hmac.compare_digest(ecc_nonce, mldsa_nonce):
        raise rejected("seal-invalid", "the seal's two signatures claim different nonces")
    if not hmac.compare_digest(ecc_nonce, expected):
        raise rejected(
            "index-not-sealed", "the index is not the one the seal signs: it was changed"
        )
    index = AuditIndex.decode(bundle.index)
    try:
        claims = verify_quote(
            bundle.seal,
            nonce=expected,
            trust_anchors=trust.vendor_roots,
            now=at or index.exported_at,
        )
    except IronrootError as exc:
        raise rejected(
            "seal-invalid", f"the seal does not verify: {exc.code}: {exc.detail}"
        ) from exc
    _as_sealed(bundle.seal)
    for cert in (*claims.ecc_chain, *claims.mldsa_chain):
        # signatureValue is the certificate's last element, a BIT STRING whose first content
        # byte counts the unused bits: 0 for any signature. The signature verifies over the
        # same bytes whatever that byte says, so one changed there went unseen.
        if cert.der[-len(cert.signature) - 1] != 0:
            raise rejected(
                "seal-invalid",
                f"certificate {cn(cert.subject)!r} of the seal's chain has its signature "
                "padded with unused bits: it was changed after the RoT made it",
            )
    lines = [
        f"sealed by RoT Ueid {claims.ueid.hex()} ({claims.lifecycle.label}, debug "
        f"{'locked' if claims.debug_locked else 'UNLOCKED'})",
        f"ES384 chain: {' → '.join(cn(c.subject) for c in claims.ecc_chain)}",
        f"ML-DSA-87 chain: {' → '.join(cn(c.subject) for c in claims.mldsa_chain)}",
        f"both RT alias signatures cover SHA-384 of the index {expected.hex()[:32]}…",
    ]
    return index, claims, lines


_READ: Final = frozenset(
    {
        "node/record.json",
        "node/events.json",
        "platform/config.json",
        "platform/state.json",
        "platform/journal.json",
        "platform/events.json",
        "rot/fuses.json",
        "rot/dice-chain.cbor",
        "pfm/pfm.cose",
        "pfm/statement.cose",
        "fleet/ca.pem",
        "fleet/crl.der",
        *(f"firmware/{c}/bundle.bin" for c in COMPONENTS),
        *(f"spdm/{d}.cbor" for d in DEVICES),
    }
)
"""The members some step reads by their fixed names; :func:`unread_members` has the rest."""
_READ_PATTERN: Final = re.compile(
    r"pfm/statement-[1-9]\d*\.cose"
    rf"|firmware/({'|'.join(COMPONENTS)})/statement-(0|[1-9]\d{{0,3}})\.cose"
    r"|fleet/credential-[a-z]+\.pem"
)
_HSM_READ: Final = frozenset({"hsm/attestation-chain.pem", "hsm/releases.cbor"})


def unread_members(names: frozenset[str]) -> list[str]:
    """The sealed members no step reads (sorted): each step reads its members by name, so a
    member under any other name — a second EAR beside the one verified, a checkpoint after a
    gap, a statement number the firmware step does not read, evidence without the EAR it
    binds, HSM members without the audit chain they are checked against — would ride along
    sealed and unchecked, for whoever unpacks the bundle to read as verified."""
    read = {n for n in names if n in _READ or _READ_PATTERN.fullmatch(n)}
    ears = [n for n in ("attestation/ear.jwt", "attestation/ear.cwt") if n in names]
    if ears:  # the attestation step reads the first, and the evidence it was issued for
        read |= {ears[0], "attestation/evidence.cbor"}
    for plane in PLANES:
        ear, evidence = credential_ear_members(plane)
        if ear in names:
            read |= {ear, evidence}
    number = 0
    while f"transparency/{number}/checkpoint" in names:
        read |= {f"transparency/{number}/checkpoint", f"transparency/{number}/proofs.cbor"}
        number += 1
    if "hsm/audit.jsonl" in names:  # the hsm step reads nothing else without it
        read |= {
            n
            for n in names
            if n in _HSM_READ
            or n == "hsm/audit.jsonl"
            or n.startswith("hsm/checkpoint-")
            or (n.startswith("hsm/audit-") and parse_segment_name(n.removeprefix("hsm/")))
        }
    return sorted(names - read)
