"""RIMs on the transparency log: the Signed Statement that registers one, and the only way a
verifier takes one back.

A RIM is registered as a SCITT Signed Statement: content type ``application/swid+xml``,
payload the signed SWID tag byte for byte, ``iss`` the registrant, ``sub`` the RIM id
(:class:`RimId`: ``NV_GPU_VBIOS_1010_0200_882_96005E0001``). :func:`rim_statement` verifies the
RIM and its id first: a registrant never logs a RIM no verifier would accept.

:func:`logged_rim_from_statement` is how a verifier trusts a RIM, in order:

1. it is a Transparent Statement: a bare SWID tag, or a Signed Statement without receipts, is
   not on the log (``VerificationFailed`` code ``no-receipt``);
2. every receipt verifies under the transparency service's keys (``InvalidProof``,
   ``BadSignature``, ``UnknownIssuer``, ``MalformedReceipt``), none issued more than 300 s
   after ``now`` (``VerificationFailed`` code ``receipt-from-the-future``); no keys trust
   nothing; with ``service_issuer`` every receipt must also name that transparency service
   in its CWT ``iss`` (``UnknownIssuer`` code ``untrusted-service``: a key the verifier
   trusts, signing as another service; the platform's check,
   :func:`ironroot.cose.on_trusted_log`);
3. the content type is ``application/swid+xml`` with the RIM attached, not hashed
   (``MalformedRim``), and ``sub`` is a RIM id (``MalformedRim``);
4. at ``now``, the statement's own CWT ``exp`` has not passed and its ``nbf`` is reached
   (RFC 8392; ``VerificationFailed`` code ``rim-expired``; either one not an integer:
   ``MalformedStatement``); :meth:`LoggedRim.valid_at` asks again at each appraisal;
5. the RIM verifies (:func:`ironroot.rim.verify_rim`: ``BadSignature``, ``ChainNotTrusted``,
   ``CertificateExpired``, ``AlgorithmNotAccepted``, ``MalformedRim``) at ``now``;
6. the id names that RIM (``VerificationFailed`` code ``rim-id-mismatch``).

Who may register RIMs for which product is the verifier's configuration, applied by
:mod:`ironroot.attestation` (``[[attestation.products]]``) to :attr:`LoggedRim.issuer`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ironroot.cose import (
    RECEIPTS,
    SignedStatement,
    TransparentStatement,
    create_statement,
    on_trusted_log,
    verify_transparent_statement,
)
from ironroot.crypto import Signer, Verifier
from ironroot.errors import IronrootError, MalformedRim, UnknownIssuer, VerificationFailed
from ironroot.rim._id import RIM_CONTENT_TYPE, RimId
from ironroot.rim._time import utc

if TYPE_CHECKING:  # the RIM model and verifier import lxml; recognising a statement does not
    from cryptography import x509

    from ironroot.rim._model import Rim, RimLimits

__all__ = ["LoggedRim", "carries_rim", "logged_rim_from_statement", "rim_statement"]


@dataclass(frozen=True, slots=True)
class LoggedRim:
    """A RIM taken from the log: verified, with its id and the statement's issuer (made by
    :func:`logged_rim_from_statement`)."""

    rim: Rim
    rim_id: RimId
    issuer: str
    not_before: int | None = None
    expires_at: int | None = None
    """The statement's own CWT ``nbf`` and ``exp`` (``None``: absent)."""

    def __str__(self) -> str:
        return str(self.rim_id)

    def valid_at(self, now: dt.datetime) -> bool:
        """Whether the RIM counts at ``now``: its signing chain valid (``not_after``
        inclusive), its statement's ``nbf`` reached and ``exp`` not (``now`` timezone-aware:
        ``ConfigError``)."""
        at = utc(now)
        t = at.timestamp()
        return (
            self.rim.not_before <= at <= self.rim.not_after
            and (self.not_before is None or t >= self.not_before)
            and (self.expires_at is None or t < self.expires_at)
        )


def rim_statement(
    rim: bytes,
    signer: Signer,
    *,
    iss: str,
    rim_id: RimId | str,
    now: dt.datetime,
    roots: Sequence[x509.Certificate] | None = None,
    x5chain: Sequence[bytes] | None = None,
) -> bytes:
    """A Signed Statement registering the RIM ``rim`` under ``rim_id``, signed by ``signer``
    as ``iss``; the RIM must verify at ``now`` and its id name it (module docs)."""
    from ironroot.rim._verify import verify_rim

    parsed = verify_rim(rim, now=now, roots=roots)
    rid = rim_id if isinstance(rim_id, RimId) else RimId.parse(rim_id)
    rid.check(parsed)
    return create_statement(
        signer,
        bytes(rim),
        iss=iss,
        sub=str(rid),
        content_type=RIM_CONTENT_TYPE,
        x5chain=x5chain,
        include_kid=x5chain is None,
    )


def _is_xml(data: bytes) -> bool:
    return bytes(data[:64]).lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"<")


def carries_rim(data: bytes) -> bool:
    """Whether ``data`` is a RIM, bare (XML) or in a Signed or Transparent Statement of content
    type ``application/swid+xml``: what a verifier takes with
    :func:`logged_rim_from_statement` (which refuses the bare ones). Nothing is verified."""
    if not isinstance(data, bytes | bytearray) or not data:
        return False
    if _is_xml(bytes(data)):
        return True
    try:
        statement = TransparentStatement.parse(bytes(data)).statement
    except IronrootError:
        try:
            statement = SignedStatement.parse(bytes(data))
        except IronrootError:
            return False
    return statement.content_type == RIM_CONTENT_TYPE


def _require_receipt(data: bytes) -> None:
    """Step 1: refuse what is plainly not on the log, with ``no-receipt``."""
    if _is_xml(data):
        raise VerificationFailed(
            "a bare RIM is not on the log: register it and use its transparent statement",
            code="no-receipt",
        )
    try:
        bare = SignedStatement.parse(data)
    except IronrootError:
        return  # not a statement at all: the Transparent Statement parser says why
    if bare.sign1.unprotected.get(RECEIPTS) in (None, [], ()):
        raise VerificationFailed(
            f"RIM statement {bare.claims.sub!r} is not on the log: it carries no receipt",
            code="no-receipt",
        )


def logged_rim_from_statement(
    data: bytes,
    *,
    service_keys: Mapping[bytes, Verifier],
    now: dt.datetime,
    roots: Sequence[x509.Certificate] | None = None,
    limits: RimLimits | None = None,
    service_issuer: str | None = None,
) -> LoggedRim:
    """The RIM of one Transparent Statement, or the error that refuses it (module docs).
    ``service_issuer``: the transparency service the receipts must name (``None``: the keys
    alone decide)."""
    from ironroot.rim._model import DEFAULT_RIM_LIMITS
    from ironroot.rim._verify import verify_rim

    now = utc(now)
    if not isinstance(data, bytes | bytearray) or not data:
        raise MalformedRim("a RIM statement must be non-empty bytes")
    _require_receipt(bytes(data))
    if not service_keys:
        raise UnknownIssuer(
            "no transparency service keys are configured: nothing is logged",
            code="untrusted-service",
        )
    statement = verify_transparent_statement(
        bytes(data), service_keys, now=now.timestamp()
    ).statement
    if service_issuer is not None:
        what = f"RIM statement {statement.claims.sub!r}"
        on_trusted_log(
            bytes(data),
            service_keys,
            what,
            issuer=service_issuer,
            now=now.timestamp(),
            require_all=True,
        )
    if statement.hash_envelope is not None or statement.content_type != RIM_CONTENT_TYPE:
        raise MalformedRim(
            f"statement {statement.claims.sub!r} does not carry a RIM: its content type is "
            f"{statement.content_type!r}, not {RIM_CONTENT_TYPE} with the tag attached"
        )
    rim_id = RimId.parse(statement.claims.sub)
    try:
        statement.check_validity(now)
    except VerificationFailed as exc:
        raise VerificationFailed(
            f"RIM statement {statement.claims.sub!r} is outside its validity (its CWT "
            f"exp/nbf: {exc.code})",
            code="rim-expired",
        ) from exc
    rim = verify_rim(statement.payload, now=now, roots=roots, limits=limits or DEFAULT_RIM_LIMITS)
    rim_id.check(rim)
    nbf, exp = statement.validity
    return LoggedRim(
        rim=rim, rim_id=rim_id, issuer=statement.claims.iss, not_before=nbf, expires_at=exp
    )
