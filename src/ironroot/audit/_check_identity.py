"""The ``identity`` step of an audit check (14 in :mod:`ironroot.audit._verify`).

The fleet credentials in the bundle are signed by the fleet CA the trust names, name exactly
the sealed node and class, and were issued on an EAR the ``attestation`` step verified; the
fleet CA's CRL in the bundle says whether they were revoked.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Final

from ironroot.audit._context import Context, NotRun, Skipped, text_time
from ironroot.audit._export import CREDENTIAL_ABSENT
from ironroot.crypto import load_crl
from ironroot.errors import ChainNotTrusted, IronrootError, VerificationFailed
from ironroot.fleet import crl_revocations, parse_credential, verify_credential
from ironroot.rot import parse_certificates

__all__ = ["check_identity"]


_CREDENTIAL: Final = re.compile(r"fleet/credential-([a-z]+)\.pem")


def _not_identified(detail: str) -> ChainNotTrusted:
    """The fleet's own code for a node's identity not holding (``ironroot.fleet._verifier``:
    a quote by another device than the node's RoT)."""
    return ChainNotTrusted(detail, code="node-identity")


def check_identity(ctx: Context) -> list[str]:
    """The fleet CA the auditor trusts issued the credentials, which name exactly the sealed
    node and class, and were issued on an EAR the ``attestation`` step verified (the latest,
    or the one a quarantined node was admitted on) — issued for evidence the sealing RoT
    signed. So the node id is tied to the RoT that sealed."""
    found = sorted(
        (match.group(1), data)
        for name, data in ctx.bundle.members.items()
        if (match := _CREDENTIAL.fullmatch(name))
    )
    ca = ctx.trust.fleet_ca
    if ca is None:
        raise Skipped(
            "the trust names no fleet CA ([fleet] ca): nothing trusted ties the node id "
            f"{ctx.index.node} to the RoT that sealed the bundle"
        )
    shipped = ctx.bundle.members.get("fleet/ca.pem")
    if shipped is not None and [c.der for c in parse_certificates(shipped)] != [ca]:
        raise ChainNotTrusted(
            "the fleet CA certificate in the bundle is not the fleet CA the trust names: the "
            "node's fleet is another",
            code="credential-untrusted",
        )
    if not found:
        reason = ctx.index.absent.get(
            CREDENTIAL_ABSENT, "the bundle predates fleet credentials in audit bundles"
        )
        raise VerificationFailed(
            f"the bundle holds no fleet credential ({reason}): nothing the fleet CA signed "
            f"says the RoT that sealed it is {ctx.index.node}'s",
            code="credential-absent",
        )
    if ctx.ear_id is None:
        if not ctx.ear_absent:
            raise NotRun("the attestation step did not verify the EAR")
        raise _not_identified(
            "the bundle holds no EAR: no credential can be tied to the RoT that sealed it"
        )
    crl = ctx.bundle.members.get("fleet/crl.der")
    revoked = {} if crl is None else crl_revocations(crl, ca, at=ctx.at)
    lines = []
    serials = []
    issued: list[dt.datetime] = []
    for plane, data in found:
        try:
            # a credential the CA revoked is judged when it was revoked: it was the node's
            # then (a quarantined node does not attest again, its credential expires)
            serial = parse_credential(data).serial
            when = min(ctx.at, revoked.get(serial, ctx.at))
            credential = verify_credential(data, ca, at=when)
        except IronrootError as exc:
            exc.check = plane
            raise
        if credential.plane != plane:
            raise _not_identified(f"fleet/credential-{plane}.pem is a {credential.plane}-plane one")
        if credential.node != ctx.index.node or credential.node_class != ctx.index.node_class:
            raise _not_identified(
                f"the {plane}-plane credential names {credential.node} of class "
                f"{credential.node_class}, the bundle is about {ctx.index.node} of class "
                f"{ctx.index.node_class}"
            )
        if credential.ear_id == ctx.ear_id:
            issued_on = "on the verified EAR (the latest)"
        elif credential.ear_id in ctx.issued_on:
            issued_on = (
                f"on EAR {credential.ear_id} ({ctx.issued_on[credential.ear_id]}, verified: what "
                f"the node was admitted on), not on its latest EAR {ctx.ear_id}"
            )
        else:
            raise _not_identified(
                f"the {plane}-plane credential was issued on EAR {credential.ear_id}, not on an "
                f"EAR the bundle holds and the attestation step verified (the latest: "
                f"{ctx.ear_id}), which the sealing RoT's evidence backs"
            )
        serials.append((plane, credential.serial))
        issued.append(credential.not_before)
        lines.append(
            f"{plane} plane: credential {credential.serial} by the trusted fleet CA names "
            f"{credential.node} ({credential.node_class}), valid "
            f"{text_time(credential.not_before)} to {text_time(credential.not_after)}, issued "
            + issued_on
        )
    lines.append(
        f"the sealing RoT (Ueid {ctx.claims.ueid.hex()}) is {ctx.index.node}'s: its evidence "
        "backs the EAR the credentials were issued on"
    )
    if crl is None:
        # Only the fleet CA can sign a CRL, but whoever seals a bundle can leave it out: a
        # quarantined node's bundle would then show its revoked credentials as good.
        reason = ctx.index.absent.get("fleet/crl.der", "it is not in the bundle")
        raise VerificationFailed(
            f"no CRL of the fleet CA ({reason}): the bundle cannot show that the credentials "
            "were not revoked (an export always signs one)",
            code="crl-absent",
        )
    signed = load_crl(crl, what="the fleet CA's CRL").last_update_utc
    if signed < max(issued):
        raise VerificationFailed(
            f"the fleet CA's CRL was signed {text_time(signed)}, before the credentials it must "
            f"speak for were issued ({text_time(max(issued))}): it cannot list their revocation",
            code="crl-older-than-credential",
        )
    listed = [(plane, serial, revoked[serial]) for plane, serial in serials if serial in revoked]
    for plane, serial, when in listed:
        lines.append(
            f"{plane} plane: credential {serial} REVOKED at {text_time(when)} (the fleet CA's "
            "CRL): judged as of then"
        )
    if not listed:
        lines.append(f"the fleet CA's CRL ({len(revoked)} revoked) lists none of them")
    ctx.signed(int(signed.timestamp()), "the fleet CA's CRL (thisUpdate)")
    ctx.signed(int(max(issued).timestamp()), "a fleet credential (notBefore)")
    return lines
