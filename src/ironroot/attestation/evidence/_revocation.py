"""Revocation and freshness of collateral, shared by the SEV-SNP and TDX verifiers.

A CRL *applies* to a certificate of a chain (leaf first, each certificate issued by the next,
the last one self-signed) when the CRL's issuer name is the certificate's issuer and the CRL's
signature verifies with that issuer's key (``cryptography`` checks ECDSA and RSASSA-PSS CRL
signatures alike: AMD's KDS signs its CRLs RSASSA-PSS SHA-384 with the ARK, Intel's PCS signs
its PCK and root CA CRLs ECDSA P-256). CRLs that apply to no certificate of the chain (another
product's, another CA's) are not used and not judged.

An applying CRL must be one that can decide revocation as a complete CRL of its issuer
(:func:`ironroot.crypto.check_crl`, RFC 5280 §5.2, §5.3): one carrying a critical extension the
verifier does not process, a delta CRL, an indirect CRL or one partitioned by reasons, or one
with an entry carrying an unprocessed critical extension is refused (``ChainNotTrusted``
``crl-unusable``), not read as "not revoked". Its issuing distribution point then says which of
the issuer's certificates it covers (:func:`ironroot.crypto.crl_covers`: only end entities,
only CAs, one named distribution point): a certificate outside its scope is not covered by it.

Revocation is permanent: a certificate listed by an applicable CRL is refused
(``CertificateRevoked``) whether or not that CRL is still fresh. Freshness is then judged per
CRL issuer: the issuer is covered when at least one of its applicable CRLs is fresh at the
verification time (``thisUpdate <= now <= nextUpdate``). A CRL without ``nextUpdate`` (RFC 5280
requires one) states no freshness and counts as stale. Stale collateral is refused
(``CollateralExpired``) unless the caller allows it, in which case it is listed
(:class:`StaleCollateral`) so that the result and an appraisal policy can see it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from cryptography import x509
from cryptography.hazmat.primitives import hashes

from ironroot.attestation.evidence._certs import aware
from ironroot.crypto import check_crl, crl_covers
from ironroot.errors import CertificateRevoked, ChainNotTrusted, CollateralExpired

__all__ = [
    "RevocationResult",
    "StaleCollateral",
    "chain_has_crl",
    "check_chain_revocation",
    "common_name",
    "freshness",
    "refuse_stale",
]


def common_name(name: x509.Name) -> str:
    """The common name of ``name`` (its RFC 4514 form when it has none)."""
    values = name.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    if not values:
        return name.rfc4514_string()
    value = values[0].value
    return value if isinstance(value, str) else value.decode("utf-8", "replace")


def _iso(when: datetime | None) -> str | None:
    return None if when is None else when.isoformat().replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class StaleCollateral:
    """One piece of collateral used outside its validity window, and why."""

    name: str
    issued: datetime | None
    next_update: datetime | None
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "issued": _iso(self.issued),
            "next_update": _iso(self.next_update),
            "reason": self.reason,
        }

    def describe(self) -> str:
        return f"{self.name} ({self.reason})"


def freshness(
    name: str, issued: datetime | None, next_update: datetime | None, now: datetime
) -> StaleCollateral | None:
    """``None`` when ``issued <= now <= next_update``; otherwise what is wrong."""
    at = aware(now)
    if next_update is None:
        return StaleCollateral(name, issued, None, "no nextUpdate: freshness not stated")
    if at > next_update:
        return StaleCollateral(name, issued, next_update, f"next update was {_iso(next_update)}")
    if issued is not None and at < issued:
        return StaleCollateral(
            name, issued, next_update, f"issued {_iso(issued)}, after the verification time"
        )
    return None


def refuse_stale(stale: Sequence[StaleCollateral], *, allow: bool) -> str:
    """Raise ``CollateralExpired`` for stale collateral unless ``allow``; else a detail line."""
    if not stale:
        return ""
    listed = "; ".join(item.describe() for item in stale)
    if not allow:
        raise CollateralExpired(
            f"stale collateral: {listed} (refused: stale collateral is not allowed)"
        )
    return f"stale: allowed: {listed}"


@dataclass(frozen=True, slots=True)
class RevocationResult:
    """What a revocation check covered: a detail line, the stale CRLs it allowed, until
    when the fresh CRLs it relied on speak (per issuer the last ``nextUpdate`` of its fresh
    CRLs, the first over the issuers; ``None`` when none was fresh), and the positions in the
    chain of the certificates an applicable CRL covered (``covered``)."""

    detail: str
    stale: tuple[StaleCollateral, ...]
    valid_until: datetime | None = None
    covered: frozenset[int] = frozenset()


_MAX_REMEMBERED: Final = 1024
_SIGNED: dict[tuple[bytes, bytes], bool] = {}


def _signed_by(
    crl: x509.CertificateRevocationList, crl_print: bytes, issuer: x509.Certificate
) -> bool:
    """Whether ``issuer``'s key signed ``crl``; remembered per (CRL, issuer) pair, as the
    answer never changes and a verifier checks the same few CRLs for every piece of evidence."""
    key = (crl_print, issuer.fingerprint(hashes.SHA256()))
    known = _SIGNED.get(key)
    if known is None:
        known = crl.is_signature_valid(issuer.public_key())  # type: ignore[arg-type]
        if len(_SIGNED) >= _MAX_REMEMBERED:
            _SIGNED.clear()
        _SIGNED[key] = known
    return known


def _covers(crl: x509.CertificateRevocationList, cert: x509.Certificate) -> bool:
    """Whether ``crl`` is in scope for ``cert`` (its issuing distribution point)."""
    try:
        is_ca = cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        is_ca = False
    try:
        points = cert.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
    except x509.ExtensionNotFound:
        points = None
    return crl_covers(crl, is_ca=is_ca, distribution_points=points)


def _links(
    chain: Sequence[x509.Certificate], crl_issuers: Sequence[x509.Name]
) -> list[tuple[int, x509.Certificate, x509.Certificate, x509.Name, list[int]]]:
    """(position, certificate, its issuer in the chain, the issuer's name, indices of the CRLs
    naming it) for each certificate whose issuer the chain holds (names read once: each read
    builds a new ``Name``)."""
    subjects = [cert.subject for cert in chain]
    out = []
    for index, cert in enumerate(chain):
        upper = index + 1 if index + 1 < len(chain) else index
        name = cert.issuer
        if subjects[upper] != name:
            continue
        matching = [i for i, crl_issuer in enumerate(crl_issuers) if crl_issuer == name]
        out.append((index, cert, chain[upper], name, matching))
    return out


def chain_has_crl(
    chain: Sequence[x509.Certificate], crls: Sequence[x509.CertificateRevocationList]
) -> bool:
    """Whether a CRL names the issuer of a certificate of ``chain`` that ``chain`` holds (its
    signature is checked by :func:`check_chain_revocation`)."""
    return any(matching for *_, matching in _links(chain, [crl.issuer for crl in crls]))


def check_chain_revocation(
    chain: Sequence[x509.Certificate],
    crls: Sequence[x509.CertificateRevocationList],
    *,
    now: datetime,
    allow_stale: bool,
) -> RevocationResult | None:
    """Check ``chain`` (leaf first, each issued by the next, the root last) against ``crls``.

    Returns ``None`` when no CRL applies to any certificate of the chain (see
    :func:`chain_has_crl`; the caller records the check as not run). Raises
    ``ChainNotTrusted`` for a CRL whose issuer is in the chain but whose signature does not
    verify, ``ChainNotTrusted`` ``crl-unusable`` for one that cannot decide revocation (module
    docs), ``CertificateRevoked`` for a listed certificate, and ``CollateralExpired`` for a
    stale CRL unless ``allow_stale``.
    """
    applied: dict[int, x509.Name] = {}
    prints: dict[int, bytes] = {}
    checked: list[str] = []
    uncovered: list[str] = []
    covered_at: set[int] = set()
    named = False
    for index, cert, issuer, issuer_name, matching in _links(chain, [crl.issuer for crl in crls]):
        covered = False
        for i in matching:
            named = True
            crl = crls[i]
            if i not in prints:
                prints[i] = crl.fingerprint(hashes.SHA256())
            if not _signed_by(crl, prints[i], issuer):
                raise ChainNotTrusted(
                    f"CRL of {common_name(issuer_name)!r} has an invalid signature"
                )
            check_crl(crl)
            if not _covers(crl, cert):
                continue
            if crl.get_revoked_certificate_by_serial_number(cert.serial_number) is not None:
                raise CertificateRevoked(
                    f"certificate {common_name(cert.subject)!r} (serial {cert.serial_number:#x}) "
                    f"is revoked by the CRL of {common_name(issuer_name)!r}"
                )
            applied[i] = issuer_name
            covered = True
            covered_at.add(index)
        (checked if covered else uncovered).append(common_name(cert.subject))
    if not named:
        return None
    by_issuer: dict[str, list[tuple[StaleCollateral | None, datetime | None]]] = {}
    seen: set[bytes] = set()
    for i, issuer_name in applied.items():
        if prints[i] in seen:  # the same CRL given twice
            continue
        seen.add(prints[i])
        label = f"CRL of {common_name(issuer_name)}"
        next_update = crls[i].next_update_utc
        by_issuer.setdefault(label, []).append(
            (freshness(label, crls[i].last_update_utc, next_update, now), next_update)
        )
    stale = tuple(
        next(s for s, _ in results if s is not None)
        for results in by_issuer.values()
        if all(s is not None for s, _ in results)
    )
    fresh_until = [
        max(n for s, n in results if s is None and n is not None)
        for results in by_issuer.values()
        if any(s is None for s, _ in results)
    ]
    parts = [f"not revoked: {', '.join(checked)}"] if checked else []
    if uncovered:
        parts.append(f"no CRL given for: {', '.join(uncovered)}")
    allowed = refuse_stale(stale, allow=allow_stale)
    if allowed:
        parts.append(allowed)
    return RevocationResult(
        "; ".join(parts), stale, min(fresh_until, default=None), frozenset(covered_at)
    )
