"""Revocation of the certificates a node's evidence is signed under: its RoT's DICE chains
(IDevID — the DeviceID the vendor CA issued —, LDevID, FMC alias, RT alias) and each SPDM
device's chain (root, device CA, device certificate).

Where revocations come from (:class:`CrlSet`): X.509 CRLs (RFC 5280), DER or PEM,

* named by the fleet's trust configuration: the files of ``admission/crls/``
  (:func:`add_crl` stores one as ``<sha256>.crl`` after it parses);
* or published on the log: a transparent statement whose content type is
  ``application/pkix-crl`` and whose payload is the CRL (DER or PEM), among the class's
  statements and the fleet's added endorsements (``fleet attest --endorse``); of a witnessed
  statement, the Transparent Statement in it. Who carried it does not decide whether it
  revokes — its signer does (below): its CWT issuer need not be one the class trust allows,
  and one whose receipts do not verify under the class trust's transparency services counts
  too, its label (in the reason of what it revokes) saying ``its receipts do not verify for
  the class``. A revocation passed over for its carrier would fail open; the receipts are the
  audit trail of a CRL, not its authority (the CA's signature is), and a CRL can only take
  trust away.

What a CRL revokes (:meth:`CrlSet.revoked`): a CRL *applies* to a certificate of a chain when
its issuer name is the certificate's issuer and its signature verifies under that issuer's
key — the previous certificate of the chain, or for the IDevID the trusted vendor CA root
that issued it, for a device's root the pinned root itself. Names are compared as RFC 5280
(7.1) does, attribute by attribute whatever their string type (a CA's CRL naming it in
PrintableString where its certificates say UTF8String), strings without case or
insignificant spaces; a CRL of another name, even under the issuer's key, lists that name's
serials, not these. The vendor root that issued the IDevID is looked up too, as a device's
pinned root is: its own CRL listing its own serial revokes every chain it issued. A CRL that
applies to nothing, or whose signature does not verify under the issuer it names (not the
CA's: a file or a statement proves nothing by being there), is passed over. Nothing
un-revokes: the CRLs are a union, so an older CRL of the CA beside a newer one, or another
that does not list a serial, takes nothing back. A certificate whose serial
an applying CRL lists is revoked, whatever the CRL's ``thisUpdate`` (one dated after the
appraisal revokes already) and ``nextUpdate`` (a revocation is permanent; keeping CRLs
current is the operator's, as for any relying party), whatever the reason (``certificateHold``
too; an entry ``removeFromCRL`` is a delta CRL's: the CRL cannot decide, below).

An applying CRL that cannot decide revocation as a complete CRL of its issuer
(:func:`ironroot.crypto.check_crl`: a critical extension the verifier does not process, a delta
CRL, an indirect CRL or one partitioned by reasons, an entry with an unprocessed critical
extension) is not read as "not revoked": the certificate whose issuer signed it counts as
revoked, with the reason ``revocation undecided: …`` (only the issuer can make such a CRL).
A CRL that cannot be read — a file over the size limit (4 MiB), one cut short (read while
``cp`` writes it), a damaged one, a revocation statement's that does not parse — is not read as
"not revoked" either: the issuer it names in its first bytes (:func:`_crl_issuer`) has every
certificate undecided, ``revocation undecided: … CRL <label> of its issuer cannot be read: …``
(its signature cannot be checked, but only the operator puts files and endorsements there;
copy a CRL under another suffix and rename it, or :func:`add_crl`, which refuses one that does
not parse, as ``add_endorsement`` refuses such a revocation statement). Bytes that do not
start as a CRL name no issuer: left out with a warning.
A CRL whose issuing distribution point leaves the certificate out of its scope
(:func:`ironroot.crypto.crl_covers`: only end entities, only CAs, another distribution point)
does not apply to it.

A revocation statement's own CWT ``exp`` and ``nbf`` are not read, on purpose and unlike every
other statement kind's: a revocation fails closed. Past its ``exp`` it still revokes (an
expiring statement must not silently un-revoke a certificate), before its ``nbf`` it already
does (a revocation is never postponed by its statement), and a malformed claim is no reason to
pass it over. To lift one, remove the CRL or its endorsement.

The verifier (:meth:`Revocations.apply`, one call from ``FleetVerifier.appraise``) checks the
chains of evidence it has already verified: a revoked certificate sets the
``instance-identity`` claim of the submodule that carries it — ``rot`` for the DICE chains,
the device's own for its SPDM chain — to 96 (untrustworthy instance) with a reason
``revoked: …``: the evidence is the node's genuine answer, from a device that may no longer be
trusted, so the node is quarantined (``AdmissionDenied`` ``admission-denied``). With no CRL
anywhere nothing is parsed: the check costs nothing.

:class:`RevocationWatch` is a scanner trigger: its ``poll`` reports each CRL added since it
last looked (a file in ``admission/crls/``, new or written again in place — known by the
SHA-256 of its bytes, not its size and mtime, so one of the same size with its mtime put back
counts too; the CRLs are read again then too —, or any added endorsement: a CRL statement,
a review, reference values; what it reported is kept in ``admission/watched.json``, so one
added while no watch ran counts) as an event concerning every class, so the scanner
re-attests their nodes in its next round — as a new statement on the log does through
:class:`~ironroot.fleet.LogTriggers` (a CRL statement by a class's issuer is such a
statement).
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import hmac
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from stat import S_ISREG
from typing import TYPE_CHECKING, Any, Final

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.exceptions import UnsupportedAlgorithm as _Unsupported
from cryptography.hazmat.primitives import hashes

from ironroot._fileio import make_dirs, read_limited, write_atomic
from ironroot._memo import Memo
from ironroot.attestation import AR4SI, Appraisal
from ironroot.cose import (
    X5CHAIN,
    Limits,
    Sign1,
    TransparentStatement,
    decode_cbor,
    verify_transparent_statement,
)
from ironroot.crypto import check_crl, crl_covers, load_certificate, load_crls
from ironroot.ear import tier_of
from ironroot.errors import (
    ChainNotTrusted,
    IronrootError,
    LimitExceeded,
    MalformedCertificate,
    StorageError,
)
from ironroot.platform import unwrap_witnessed
from ironroot.rot import DiceCertificate, parse_certificate
from ironroot.spdm import CertificateChain, SpdmEvidence

if TYPE_CHECKING:
    from ironroot.fleet._fleet import Fleet, NodeClass

__all__ = [
    "CRL_CONTENT_TYPE",
    "CrlSet",
    "RevocationEvent",
    "RevocationWatch",
    "Revocations",
    "add_crl",
    "file_recorded",
]

CRL_CONTENT_TYPE: Final = "application/pkix-crl"
CRL_DIR: Final = ("admission", "crls")
_CRL_SUFFIXES: Final = frozenset((".crl", ".pem", ".der"))
_MAX_CRL: Final = 4 * 1024 * 1024
_QUOTE_LIMITS: Final = Limits(max_bytes=256 * 1024, max_depth=8, max_items=512)
# The RootHash of an SPDM chain by its size: the base hashes of the SPDM signing suites.
_ROOT_HASHES: Final = {48: "sha384", 32: "sha256", 64: "sha512"}
_CACHE_SECONDS: Final = 3600
_NAMES: Final = 65536
_HEAD: Final = 64 * 1024  # where an unreadable CRL's issuer name is looked for
_PEM_CRL: Final = b"-----BEGIN X509 CRL-----"
_ROT: Final = "rot"
_log = logging.getLogger("ironroot.fleet")

Labelled = tuple[str, bytes]


def _crl_dir(fleet: Fleet) -> Path:
    return fleet.directory.joinpath(*CRL_DIR)


def add_crl(fleet: Fleet, data: bytes, *, now: dt.datetime) -> str:
    """Add a CRL (DER or PEM, ``MalformedCertificate`` if it is not one) to the fleet's
    trust configuration: ``admission/crls/<sha256>.crl``; a ``crl-added`` event (recorded
    by the next add of the same CRL when a crash came between the file and it). Returns the
    file name. Whose CRL it is, and what it revokes, is decided at each appraisal."""
    crls = load_crls(data, what="CRL")
    folder = _crl_dir(fleet)
    make_dirs(folder)
    name = hashlib.sha256(data).hexdigest() + ".crl"
    path = folder / name
    # The file lands, then its event: a CRL there with no event is an add a crash cut short
    # between the two, which this one finishes.
    if path.exists() and file_recorded(fleet, "crl-added", name):
        return name
    write_atomic(path, data, mode=0o644)
    issuers = sorted({c.issuer.rfc4514_string() for c in crls})
    fleet.record(None, "crl-added", {"file": name, "issuers": issuers}, now=now)
    return name


def file_recorded(fleet: Fleet, kind: str, name: str) -> bool:
    """Whether an event of ``kind`` (``crl-added``, ``endorsement-added``) names the file
    ``name``: a file found in place without it was written by an add that was killed before
    its event (the next add records it)."""
    since = 0
    while True:
        events = fleet.events(kind=kind, since=since, limit=1000)
        if any(e.detail.get("file") == name for e in events):
            return True
        if len(events) < 1000:
            return False
        since = events[-1].seq


def _crl_files(fleet: Fleet) -> list[Path]:
    folder = _crl_dir(fleet)
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in _CRL_SUFFIXES)


_RACY_NS: Final = 3 * 1_000_000_000
"""A file changed less than this before it was hashed is hashed again at every look: a
write within the file system's timestamp granularity after it can leave its stat as it was
(the "racy" files of git's index)."""
_CHUNK: Final = 1024 * 1024
_Stat = tuple[int, int, int, int, int]
_digests: Memo[str, tuple[_Stat, str, int]] = Memo(4096)


def _stamp(path: Path) -> str:
    """What a CRL file holds: the SHA-256 of its bytes (hex; ``""`` when it cannot be read).

    Its size and mtime are not enough: a CRL of the same size written over it within the
    file system's mtime granularity, or one whose mtime was put back (``touch -r``,
    ``os.utime``), kept them. The digest is read again only when the file's stat (device,
    inode, size, mtime and ctime — which no one sets back but with the clock) has changed
    since it was hashed, or when the file had changed less than 3 s before it was: each
    scan round reads no unchanged CRL. Only what the CRL check reads is hashed: the first
    ``_MAX_CRL`` + 1 bytes of a regular file, opened without blocking; a named pipe or a
    device (through a link too) is ``""``, never waited on or read without end."""
    try:
        info = path.stat()
    except OSError:
        return ""
    if not S_ISREG(info.st_mode):
        return ""
    stat = (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns)
    key = str(path)
    known = _digests.get(key)
    if known is not None and known[0] == stat and max(stat[3], stat[4]) < known[2] - _RACY_NS:
        return known[1]
    hashed_at = time.time_ns()  # before the read: a write during it is a change after
    digest = hashlib.sha256()
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)  # swapped for a pipe meanwhile
        with os.fdopen(fd, "rb") as handle:
            if not S_ISREG(os.fstat(fd).st_mode):
                return ""
            left = _MAX_CRL + 1
            while left and (chunk := handle.read(min(_CHUNK, left))):
                digest.update(chunk)
                left -= len(chunk)
    except OSError:
        return ""
    out = digest.hexdigest()
    _digests.put(key, (stat, out, hashed_at))
    return out


def _statement_crl(data: bytes) -> TransparentStatement | None:
    """The CRL statement ``data`` is, or the Transparent Statement in it when it is witnessed;
    ``None`` when it is no CRL statement."""
    try:
        parsed = TransparentStatement.parse(unwrap_witnessed(data))
    except IronrootError:
        return None
    return parsed if parsed.statement.content_type == CRL_CONTENT_TYPE else None


def _head(path: Path) -> bytes:
    """The first bytes of a CRL file too large to read whole (where its issuer is); ``b""``
    when it cannot be read or is no regular file. Opened without blocking and checked on the
    descriptor read: a file swapped for a named pipe since its size was read is never waited
    on (in ``open`` with no writer, in ``read`` with one that never writes)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except (OSError, ValueError):  # ValueError: a NUL byte in the name
        return b""
    try:
        if not S_ISREG(os.fstat(fd).st_mode):
            return b""
        return os.pread(fd, _HEAD, 0)
    except OSError:
        return b""
    finally:
        os.close(fd)


def _header(der: bytes, pos: int) -> tuple[int, int, int] | None:
    """The tag of the DER element at ``pos``, where its content starts and where it ends (by
    its length header, maybe past ``der``); ``None`` when the header itself is not there."""
    if pos + 2 > len(der):
        return None
    first, start = der[pos + 1], pos + 2
    if first < 0x80:
        return der[pos], start, start + first
    count = first & 0x7F
    if not 1 <= count <= 4 or start + count > len(der):
        return None
    length = int.from_bytes(der[start : start + count], "big")
    return der[pos], start + count, start + count + length


def _crl_issuer(data: bytes) -> bytes | None:
    """The issuer name (DER) a CRL that cannot be read starts with — cut short, over the size
    limit, damaged further on: ``CertificateList``, ``TBSCertList``, an optional version, the
    signature algorithm, then the issuer (RFC 5280 5.1). DER, or the first PEM CRL block
    decoded as far as it goes. ``None`` when ``data`` does not start as a CRL does."""
    der = data[:_HEAD]
    begin = der.find(_PEM_CRL)
    if not der.startswith(b"\x30") and begin >= 0:
        text = b"".join(der[begin + len(_PEM_CRL) :].split(b"-----", 1)[0].split())
        try:
            der = base64.b64decode(text[: len(text) - len(text) % 4], validate=True)
        except (binascii.Error, ValueError):
            return None
    outer = _header(der, 0)
    tbs = _header(der, outer[1]) if outer is not None and outer[0] == 0x30 else None
    if tbs is None or tbs[0] != 0x30:
        return None
    item = _header(der, tbs[1])
    if item is not None and item[0] == 0x02:  # the version
        item = _header(der, item[2])
    if item is None or item[0] != 0x30:  # the signature algorithm
        return None
    name = _header(der, item[2])
    if name is None or name[0] != 0x30 or name[2] > len(der):
        return None
    return der[item[2] : name[2]]


NameKey = tuple[frozenset[tuple[str, str | bytes]], ...]


def _fold(value: str | bytes) -> str | bytes:
    return " ".join(value.casefold().split()) if isinstance(value, str) else value


def _name_key(name: x509.Name) -> NameKey:
    """``name`` as RFC 5280 (7.1) compares names: attribute by attribute whatever their string
    type, strings without case or insignificant spaces (RFC 4518's caseIgnoreMatch)."""
    return tuple(frozenset((a.oid.dotted_string, _fold(a.value)) for a in rdn) for rdn in name.rdns)


@dataclass(frozen=True, slots=True)
class _Crl:
    label: str
    crl: x509.CertificateRevocationList
    issuer: bytes  # the issuer name, DER
    name: NameKey  # the issuer name, compared as names are
    fingerprint: bytes


class CrlSet:
    """The CRLs that count for one class (module docs), with the issuers they were checked
    against remembered."""

    def __init__(self, crls: Iterable[_Crl], unread: Iterable[tuple[bytes, str, str]] = ()) -> None:
        self._by_issuer: dict[bytes, list[_Crl]] = {}
        # An issuer (name DER) whose CRL cannot be read: its label and why, the first.
        self._unread: dict[bytes, tuple[str, str]] = {}
        for issuer, label, why in unread:
            self._unread.setdefault(issuer, (label, why))
        self._by_name: dict[NameKey, list[_Crl]] = {}
        for item in crls:
            self._by_issuer.setdefault(item.issuer, []).append(item)
            self._by_name.setdefault(item.name, []).append(item)
        self._verified: dict[tuple[bytes, bytes], bool] = {}
        self._names: dict[bytes, NameKey | None] = {}  # a certificate's issuer DER → its key
        self._roots: dict[bytes, str] = {}  # a vendor root (DER) → why it is revoked, or ""
        self._warned: set[bytes] = set()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return sum(len(v) for v in self._by_issuer.values()) + len(self._unread)

    def _candidates(self, cert: DiceCertificate) -> list[_Crl]:
        """The CRLs named after ``cert``'s issuer: the same name in any encoding (module docs),
        byte for byte when ``cryptography`` cannot read the certificate."""
        with self._lock:
            seen = cert.issuer_der in self._names
            key = self._names.get(cert.issuer_der)
        if not seen:
            try:
                parsed = load_certificate(cert.der, allow_unsupported=True, der_only=True)
                key = _name_key(parsed.issuer)
            except MalformedCertificate:
                key = None
            with self._lock:
                if len(self._names) >= _NAMES:
                    self._names.clear()
                self._names[cert.issuer_der] = key
        if key is None:
            return self._by_issuer.get(cert.issuer_der, [])
        return self._by_name.get(key, [])

    @classmethod
    def build(
        cls, items: Iterable[Labelled], unreadable: Iterable[tuple[str, bytes, str]] = ()
    ) -> CrlSet:
        """From labelled CRL bytes (DER or PEM) and the ``unreadable`` ones (label, first
        bytes, why). One that does not parse leaves the certificates of the issuer it names
        undecided (module docs); one that names none is left out."""
        out: list[_Crl] = []
        failed = list(unreadable)
        for label, data in items:
            try:
                crls = load_crls(data, what="it")
            except MalformedCertificate as exc:
                failed.append((label, data, exc.detail))
                continue
            for crl in crls:
                issuer, key = crl.issuer.public_bytes(), _name_key(crl.issuer)
                out.append(_Crl(label, crl, issuer, key, crl.fingerprint(hashes.SHA256())))
        unread: list[tuple[bytes, str, str]] = []
        for label, head, why in failed:
            named = _crl_issuer(head)
            if named is None:
                _log.warning("CRL %s left out: %s (it names no issuer)", label, why)
                continue
            _log.warning(
                "CRL %s cannot be read: %s: its issuer's certificates undecided", label, why
            )
            unread.append((named, label, why))
        return cls(out, unread)

    def _signed_by(self, item: _Crl, issuer: DiceCertificate) -> bool:
        key = (item.fingerprint, issuer.der)
        with self._lock:
            known = self._verified.get(key)
        if known is None:
            public = issuer.public_key
            try:
                known = public is not None and item.crl.is_signature_valid(public.raw)
            except (InvalidSignature, _Unsupported, TypeError, ValueError):
                known = False
            with self._lock:
                self._verified[key] = known
        return known

    def revoked(self, chain: Sequence[DiceCertificate], anchors: Sequence[DiceCertificate]) -> str:
        """Why a certificate of ``chain`` (root-most first, each issued by the one before;
        the first issued by one of ``anchors``, or self-signed) is revoked; ``""`` when none
        is. The self-signed anchor that issued the first is looked up too (module docs)."""
        if not (self._by_issuer or self._unread) or not chain:
            return ""
        reason = self._revoked(chain, anchors)
        for root in (a for a in anchors if _issued(a, chain[0])):
            reason = reason or self._root(root, anchors)
        return reason

    def _root(self, root: DiceCertificate, anchors: Sequence[DiceCertificate]) -> str:
        """Why the vendor root ``root`` is revoked (the same for every chain it issued: once)."""
        with self._lock:
            known = self._roots.get(root.der)
        if known is None:
            known = self._revoked([root], anchors)
            with self._lock:
                self._roots[root.der] = known
        return known

    def _revoked(self, chain: Sequence[DiceCertificate], anchors: Sequence[DiceCertificate]) -> str:
        for index, cert in enumerate(chain):
            if cert.serial is None:
                continue
            candidates = self._candidates(cert)
            unread = self._unread.get(cert.issuer_der)
            if not candidates and unread is None:
                continue
            if index:
                issuers = [chain[index - 1]]
            else:  # a vendor root (ECDSA and ML-DSA roots may share a name), or itself
                issuers = [a for a in anchors if a.subject_der == cert.issuer_der]
                if cert.subject_der == cert.issuer_der:
                    issuers.append(cert)
            for item in candidates:
                signer = next((i for i in issuers if self._signed_by(item, i)), None)
                if signer is None:
                    if item.fingerprint not in self._warned:  # once, not at every attestation
                        self._warned.add(item.fingerprint)
                        _log.warning(
                            "CRL %s names the issuer of %s but no key of it signed it: passed over",
                            item.label,
                            cert.subject,
                        )
                    continue
                try:
                    check_crl(item.crl, what=f"CRL {item.label}")
                except (ChainNotTrusted, MalformedCertificate) as exc:
                    return (
                        f"revocation undecided: certificate {cert.subject} (serial "
                        f"{cert.serial:#x}): {exc.detail}"
                    )
                if not crl_covers(
                    item.crl, is_ca=bool(cert.is_ca), distribution_points=_points(cert)
                ):
                    continue
                entry = item.crl.get_revoked_certificate_by_serial_number(cert.serial)
                if entry is not None:
                    return (
                        f"revoked: certificate {cert.subject} (serial {cert.serial:#x}) is "
                        f"revoked by the CRL of {signer.subject} ({item.label}), since "
                        f"{entry.revocation_date_utc.isoformat()}"
                    )
            if unread is not None:
                return (
                    f"revocation undecided: certificate {cert.subject} (serial "
                    f"{cert.serial:#x}): CRL {unread[0]} of its issuer cannot be read: {unread[1]}"
                )
        return ""


def _issued(root: DiceCertificate, cert: DiceCertificate) -> bool:
    """Whether ``root``, a self-signed anchor, may be the one that issued ``cert``: its name
    and (when both give one) its key identifier, as the quote's chain is matched to a vendor
    root (:mod:`ironroot.rot`; two of one name without key identifiers are both looked up)."""
    return root.subject_der == root.issuer_der == cert.issuer_der and (
        cert.authority_key_id is None
        or root.subject_key_id is None
        or root.subject_key_id == cert.authority_key_id
    )


def _points(cert: DiceCertificate) -> x509.CRLDistributionPoints | None:
    """The CRL distribution points of ``cert``, ``None`` when it names none (or they cannot be
    read: a DICE certificate the DICE parser reads and ``cryptography`` does not)."""
    try:
        parsed = load_certificate(cert.der, allow_unsupported=True, der_only=True)
        return parsed.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
    except (x509.ExtensionNotFound, MalformedCertificate):
        return None


def _quote_chains(quote: bytes) -> list[list[DiceCertificate]]:
    """The DICE chains of a quote already verified, root-most first (its x5chain headers
    are leaf first: RT alias, FMC alias, LDevID, IDevID)."""
    container = decode_cbor(quote, _QUOTE_LIMITS)
    chains = []
    for name in ("es384", "ml-dsa-87"):
        data = container.get(name) if isinstance(container, dict) else None
        if not isinstance(data, bytes):
            continue
        x5chain = Sign1.decode(data, _QUOTE_LIMITS).unprotected.get(X5CHAIN)
        if isinstance(x5chain, list | tuple):
            certs = [parse_certificate(c) for c in x5chain if isinstance(c, bytes)]
            chains.append(certs[::-1])
    return chains


def _spdm_chain(evidence: bytes, root: bytes) -> list[DiceCertificate]:
    """The certificate path of SPDM evidence already verified to ``root``, root first: the
    recorded chain whose RootHash is ``root``'s, with ``root`` in front when the chain starts
    below it (DSP0274 allows that, and the recorded chain is not signed: a carrier may drop
    the root), as :func:`ironroot.spdm.verify_certificate_chain` builds the path."""
    recorded = SpdmEvidence.decode(evidence).certificate_chain
    for size, name in _ROOT_HASHES.items():
        try:
            chain = CertificateChain.decode(recorded, hash_size=size)
        except IronrootError:
            continue
        if not hmac.compare_digest(chain.root_hash, hashlib.new(name, root).digest()):
            continue
        certificates = chain.certificates
        if certificates[0] != root:
            certificates = (root, *certificates)
        return [parse_certificate(c) for c in certificates]
    return []


def _revoke(appraisal: Appraisal, reason: str) -> Appraisal:
    vector = dict(appraisal.trust_vector)
    current = vector.get("instance-identity")
    code = AR4SI.UNTRUSTWORTHY_INSTANCE
    if current is None or tier_of(current).severity < tier_of(code).severity:
        vector["instance-identity"] = code
    return Appraisal.from_vector(
        vector,
        policy_id=appraisal.policy_id,
        reasons=(*appraisal.reasons, reason),
        evidence=appraisal.evidence,
    )


class Revocations:
    """The revocation check of a fleet's verifier (module docs)."""

    def __init__(self, fleet: Fleet, vendor_roots: Sequence[bytes]) -> None:
        self.fleet = fleet
        self._anchors = tuple(parse_certificate(r) for r in vendor_roots)
        self._lock = threading.Lock()
        self._sets: dict[str, tuple[object, int, CrlSet]] = {}

    def crls(
        self,
        klass: NodeClass,
        added: Callable[[], Sequence[Labelled]],
        token: object,
        now: dt.datetime,
    ) -> CrlSet:
        """The CRLs that count for ``klass`` (cached until the files — one written again in
        place too — or endorsements change, and hourly)."""
        files = _crl_files(self.fleet)
        key = (token, tuple((p.name, _stamp(p)) for p in files))
        hour = int(now.timestamp()) // _CACHE_SECONDS
        with self._lock:
            cached = self._sets.get(klass.name)
            if cached is not None and cached[0] == key and cached[1] == hour:
                return cached[2]
        items: list[Labelled] = []
        unreadable: list[tuple[str, bytes, str]] = []
        for path in files:
            label = f"admission/crls/{path.name}"
            try:
                # a regular file only: a named pipe held open by a writer would be waited on
                items.append((label, read_limited(path, _MAX_CRL, regular=True)))
            except LimitExceeded:
                unreadable.append((label, _head(path), f"it is larger than {_MAX_CRL} bytes"))
            except (OSError, IronrootError) as exc:
                _log.warning("CRL %s cannot be read: %s", path, exc)
        # A class whose platform requires witnesses ships witnessed statements: a CRL
        # statement is the Transparent Statement in one (a revocation counts witnessed or not).
        statements = [
            (f"class {klass.name} {c} statement {n}", data)
            for c, found in sorted(klass.statements.items())
            for n, data in enumerate(map(unwrap_witnessed, found))
        ]
        # Who logged a CRL statement, and where, does not decide whether it revokes: the CRL
        # applies only where its issuer's key signed it. Receipts that do not verify for the
        # class are said in its label (the audit trail), never a reason to pass it over.
        for label, data in (*statements, *added()):
            parsed = _statement_crl(data)
            if parsed is None:
                continue
            try:
                verify_transparent_statement(unwrap_witnessed(data), klass.trust.service_keys)
            except IronrootError as exc:
                _log.warning("CRL statement %s is not logged for the class: %s", label, exc.detail)
                label = f"{label}; its receipts do not verify for the class"
            items.append((label, parsed.statement.payload or b""))
        built = CrlSet.build(items, unreadable)
        with self._lock:
            self._sets[klass.name] = (key, hour, built)
        return built

    def apply(
        self,
        node_id: str,
        klass: NodeClass,
        quote: bytes,
        devices: Mapping[str, bytes],
        submods: Mapping[str, Appraisal],
        *,
        added: Callable[[], Sequence[Labelled]],
        token: object,
        now: dt.datetime,
    ) -> dict[str, Appraisal]:
        """``submods`` with a revoked certificate of the (verified) quote's DICE chains or of
        a device's (verified) SPDM chain marked (module docs)."""
        out = dict(submods)
        crls = self.crls(klass, added, token, now)
        if not len(crls):
            return out
        for chain in _quote_chains(quote):
            reason = crls.revoked(chain, self._anchors)
            if reason and _ROT in out:
                out[_ROT] = _revoke(out[_ROT], reason)
                break
        pinned = self.fleet.node(node_id).config.devices
        for name, evidence in sorted(devices.items()):
            info = pinned.get(name)
            if info is None or name not in out:
                continue
            try:
                chain = _spdm_chain(evidence, info.root)
            except IronrootError:
                continue  # its appraisal has failed already: nothing was verified
            reason = crls.revoked(chain, ())
            if reason:
                out[name] = _revoke(out[name], reason)
        return out


@dataclass(frozen=True, slots=True)
class RevocationEvent:
    """A new CRL or endorsement, as the scanner's trigger: it concerns the class whose
    platform is ``sub``; ``crl`` is the label of what was added (a file of
    ``admission/crls/``, or an added endorsement: a CRL statement, a review, reference
    values)."""

    crl: str
    sub: str
    iss: str | None = None


WATCH_STATE: Final = ("admission", "watched.json")
"""Where :class:`RevocationWatch` keeps what it has reported (survives a restart)."""
_WATCH_FORMAT: Final = 1
_MAX_WATCH_STATE: Final = 16 * 1024 * 1024

Seen = set[tuple[str, str]]


class RevocationWatch:
    """Reports the CRLs and endorsements added since the last poll (module docs), for
    ``Scanner.follow(poll=…)``: ``added`` returns the fleet's added endorsements
    (``AdmissionAuthority.endorsements``); ``then``, another poll (``LogTriggers.poll``)
    whose events come first.

    What it has reported is kept in ``admission/watched.json``: a watch started again (the
    service restarted, or after a crash) reports what was added while none ran. The first
    watch of a fleet (no such file) takes what is there as seen; a file that cannot be read
    is taken as having seen nothing (every class is triggered once)."""

    def __init__(
        self,
        fleet: Fleet,
        added: Callable[[], Sequence[Labelled]] = lambda: (),
        *,
        then: Callable[[], Iterable[Any]] | None = None,
    ) -> None:
        self.fleet = fleet
        self._added = added
        self._then = then
        self._path = fleet.directory.joinpath(*WATCH_STATE)
        seen = self._load()
        if seen is None:  # the fleet's first watch: what is there is what it starts from
            seen = self._current()
            self._save(seen)
        self._seen = seen

    def _load(self) -> Seen | None:
        try:
            data = read_limited(self._path, _MAX_WATCH_STATE, regular=True)
        except FileNotFoundError:
            return None
        except (OSError, IronrootError) as exc:
            _log.warning("%s cannot be read (%s): every class is triggered", self._path, exc)
            return set()
        try:
            doc = json.loads(data)
            if doc.get("format") != _WATCH_FORMAT:
                raise ValueError("not format 1")
            return {(str(label), str(stamp)) for label, stamp in doc["seen"]}
        except (ValueError, TypeError, KeyError, AttributeError, RecursionError) as exc:
            _log.warning("%s is damaged (%s): every class is triggered", self._path, exc)
            return set()

    def _save(self, seen: Seen) -> None:
        doc = {"format": _WATCH_FORMAT, "seen": sorted([label, stamp] for label, stamp in seen)}
        try:
            make_dirs(self._path.parent)
            write_atomic(self._path, json.dumps(doc).encode(), mode=0o600)
        except OSError as exc:  # a scan round that fails, recorded; the scanner goes on
            raise StorageError(f"{self._path} cannot be written: {exc.strerror}") from exc

    def _current(self) -> Seen:
        names = {(f"admission/crls/{p.name}", _stamp(p)) for p in _crl_files(self.fleet)}
        names |= {(label, hashlib.sha256(data).hexdigest()) for label, data in self._added()}
        return names

    def poll(self) -> list[Any]:
        """The other poll's events, then one event per class for each CRL or endorsement
        added (or a file written again in place) since the last poll."""
        before = list(self._then()) if self._then is not None else []
        current = self._current()
        new = sorted({label for label, _ in current - self._seen})
        if current != self._seen:
            self._save(current)
        self._seen = current
        platforms = sorted({self.fleet.node_class(c).trust.platform for c in self.fleet.classes()})
        return [*before, *(RevocationEvent(crl, platform) for crl in new for platform in platforms)]
