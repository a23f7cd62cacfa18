"""The SPDM certificate chain format and its verification up to a trusted root.

SPDM 1.2 / 1.3 certificate chain (DSP0274 "Certificate chain format")::

    Length(2) Reserved(2) RootHash(H) Certificates

``Length`` is the size of the whole structure, ``RootHash`` the negotiated base hash of the
root certificate's DER, and ``Certificates`` the concatenated DER certificates in order: the
first is the root itself or is signed by the root, each next one is signed by the one before,
and the last is the leaf whose key signs SPDM messages. The DIGESTS response carries the base
hash of this whole structure.

Splitting the concatenation needs only each certificate's outer DER header, read here; every
certificate is then parsed, and the path checked, by pyca/cryptography's X.509 verifier
(signatures, issuer/subject chaining, basic constraints), with a permissive extension policy
because device certificates (DICE, SPDM) are not web PKI certificates. It refuses a critical
extension it does not know (RFC 5280 §4.2) and knows the DICE extensions (TcbInfo,
MultiTcbInfo, UEID, Open DICE: :data:`ironroot.crypto.DICE_EXTENSIONS`) only as declared here,
so a DICE chain whose certificates mark them critical verifies; a critical one must decode
(the DICE parsers of :mod:`ironroot.rot.dice`), else the path fails ("critical DICE extension
2.23.133.5.4.1 does not decode"). The SPDM ordering rule is checked on top: the verified path
must be exactly the chain as sent.

A verifier that sees the same devices again (a fleet re-attesting its nodes) may pass a
:class:`SpdmChainCache`: a chain whose path verified once is remembered by its exact bytes
(RootHash and every certificate), the trusted root's exact DER and the hash algorithm, and
a later use skips only what those bytes alone decide (the RootHash, the parsing, the
signatures, names and constraints of the path). The validity of every certificate of the
path is checked at each use's ``now``, before the cache is looked at, exactly as without it;
a changed byte, another root or another hash is a miss and is verified in full; failures are
never remembered. Revocation is not this function's: callers check it on every use.
"""

from __future__ import annotations

import functools
import hmac
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Final

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509 import verification

from ironroot.crypto import DICE_EXTENSIONS, load_certificate
from ironroot.crypto import load_certificates as crypto_load_certificates
from ironroot.errors import (
    CertificateExpired,
    ChainNotTrusted,
    ConfigError,
    IronrootError,
    MalformedCertificate,
    MalformedSpdm,
)
from ironroot.spdm._codec import Reader, u16
from ironroot.spdm._constants import MAX_CERT_CHAIN_SIZE, BaseHashAlgo, base_hash

__all__ = [
    "CertificateChain",
    "SpdmChainCache",
    "load_certificates",
    "verify_certificate_chain",
    "verify_certificate_chain_until",
]

_SEQUENCE = 0x30
# DSP0274 id-DMTF-eku-responder-auth / id-DMTF-eku-requester-auth ({ id-DMTF-spdm 3 / 4 }).
EKU_RESPONDER_AUTH: Final = x509.ObjectIdentifier("1.3.6.1.4.1.412.274.3")
EKU_REQUESTER_AUTH: Final = x509.ObjectIdentifier("1.3.6.1.4.1.412.274.4")
_HEADER = 4  # Length(2) + Reserved(2)


def _split_der(blob: bytes) -> list[bytes]:
    """Cut concatenated DER certificates apart by their outer SEQUENCE headers."""
    out: list[bytes] = []
    pos = 0
    while pos < len(blob):
        if blob[pos] != _SEQUENCE:
            raise MalformedSpdm(f"certificate chain: no DER SEQUENCE at offset {pos}")
        if pos + 2 > len(blob):
            raise MalformedSpdm("certificate chain: truncated DER header")
        first = blob[pos + 1]
        if first < 0x80:
            size, header = first, 2
        else:
            n = first & 0x7F
            if not 1 <= n <= 3 or pos + 2 + n > len(blob):
                raise MalformedSpdm("certificate chain: bad DER length")
            size, header = int.from_bytes(blob[pos + 2 : pos + 2 + n], "big"), 2 + n
        end = pos + header + size
        if end > len(blob):
            raise MalformedSpdm("certificate chain: truncated certificate")
        out.append(blob[pos:end])
        pos = end
    return out


_MAX_CERTIFICATES = 16
_PEM_MARKER = b"-----BEGIN"


def load_certificates(data: bytes) -> tuple[bytes, ...]:
    """The DER certificates in ``data``, in file order: PEM (one or several) or DER (one, or
    several concatenated as libspdm's ``bundle_*.certchain.der`` files are)."""
    if not isinstance(data, bytes) or not data:
        raise MalformedCertificate("no certificate data")
    if len(data) > MAX_CERT_CHAIN_SIZE * 2:
        raise MalformedCertificate("certificate file too large for an SPDM chain")
    if _PEM_MARKER in data:
        certs = crypto_load_certificates(data, what="certificate file", max_count=_MAX_CERTIFICATES)
        ders = [cert.public_bytes(Encoding.DER) for cert in certs]
    else:
        try:
            ders = _split_der(data)
        except MalformedSpdm as exc:
            raise MalformedCertificate(f"not DER certificates: {exc.detail}") from exc
        for i, der in enumerate(ders):
            _load(der, f"certificate {i}")
    if not 1 <= len(ders) <= _MAX_CERTIFICATES:
        raise MalformedCertificate(f"expected 1 to {_MAX_CERTIFICATES} certificates")
    return tuple(ders)


def _load(der: bytes, what: str) -> x509.Certificate:
    return load_certificate(der, what=what, der_only=True)


def _load_all(certificates: Sequence[bytes]) -> tuple[x509.Certificate, ...]:
    """Each DER certificate of a chain parsed, in order (``certificate i`` named on a fault)."""
    return tuple(_load(der, f"certificate {i}") for i, der in enumerate(certificates))


@dataclass(frozen=True, slots=True)
class CertificateChain:
    """An SPDM certificate chain: RootHash and the DER certificates, root side first."""

    root_hash: bytes
    certificates: tuple[bytes, ...]
    # The certificates parsed, kept by the first x509() (or build, or decode): the chain's
    # bytes cannot change, and parse to the same immutable objects every time.
    _parsed: tuple[x509.Certificate, ...] | None = field(
        default=None, init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        if not isinstance(self.root_hash, bytes) or not self.root_hash:
            raise MalformedSpdm("certificate chain: RootHash must be non-empty bytes")
        if not self.certificates or not all(isinstance(c, bytes) for c in self.certificates):
            raise MalformedSpdm("certificate chain: at least one DER certificate")
        if _HEADER + len(self.root_hash) + sum(map(len, self.certificates)) > MAX_CERT_CHAIN_SIZE:
            raise MalformedSpdm(f"certificate chain longer than {MAX_CERT_CHAIN_SIZE} bytes")

    @classmethod
    def build(cls, certificates: Sequence[bytes], hash_algo: BaseHashAlgo) -> CertificateChain:
        """A chain whose first certificate is the root (RootHash = its hash)."""
        certs = tuple(certificates)
        if not certs:
            raise MalformedSpdm("certificate chain: at least one DER certificate")
        parsed = _load_all(certs)
        chain = cls(base_hash(hash_algo, certs[0]), certs)
        object.__setattr__(chain, "_parsed", parsed)
        return chain

    def __getstate__(self) -> list[object]:
        # A pickled chain is its bytes, as before the parsed certificates were kept (they do
        # not pickle): the copy parses them again when asked.
        return [self.root_hash, self.certificates, None]

    @property
    def leaf(self) -> bytes:
        return self.certificates[-1]

    def encode(self) -> bytes:
        body = self.root_hash + b"".join(self.certificates)
        return u16(_HEADER + len(body)) + bytes(2) + body

    def digest(self, hash_algo: BaseHashAlgo) -> bytes:
        """What DIGESTS carries for this chain: the base hash of the encoded structure."""
        return base_hash(hash_algo, self.encode())

    def x509(self) -> list[x509.Certificate]:
        parsed = self._parsed
        if parsed is None:
            parsed = _load_all(self.certificates)
            object.__setattr__(self, "_parsed", parsed)
        return list(parsed)

    @classmethod
    def decode(cls, data: bytes, *, hash_size: int) -> CertificateChain:
        r = Reader(data, "certificate chain")
        length = r.u16("Length")
        r.zeros(2, "Reserved")
        if length != len(data):
            raise MalformedSpdm(f"certificate chain: Length {length}, got {len(data)} bytes")
        root_hash = r.take(hash_size, "RootHash")
        blob = r.take(r.remaining, "Certificates")
        chain = cls(root_hash, tuple(_split_der(blob)))
        chain.x509()
        return chain


_ChainKey = tuple[BaseHashAlgo, bytes, bytes, tuple[bytes, ...]]
# A certificate's validity and its subject (rendered as text only when a check fails, as a
# fresh verification does); a remembered chain keeps one per path certificate, and the leaf it
# returns.
_Window = tuple[datetime, datetime, x509.Name]


@dataclass(frozen=True, slots=True)
class _Verified:
    windows: tuple[_Window, ...]
    leaf: x509.Certificate


class SpdmChainCache:
    """SPDM certificate chains whose path to a trusted root verified (module docs).

    Looked up by the hash algorithm, the root's exact DER, the chain's RootHash and its exact
    DER certificates; holds each path certificate's validity period and subject, and the
    leaf. Bounded: when full it starts over.
    """

    __slots__ = ("_entries", "_max")

    def __init__(self, max_entries: int = 1024) -> None:
        if isinstance(max_entries, bool) or not isinstance(max_entries, int) or max_entries < 1:
            raise ConfigError("an SPDM chain cache holds at least one chain")
        self._entries: dict[_ChainKey, _Verified] = {}
        self._max = max_entries

    def __len__(self) -> int:
        return len(self._entries)

    def _get(self, key: _ChainKey) -> _Verified | None:
        return self._entries.get(key)

    def _put(self, key: _ChainKey, path: Sequence[x509.Certificate]) -> None:
        windows = tuple((c.not_valid_before_utc, c.not_valid_after_utc, c.subject) for c in path)
        if len(self._entries) >= self._max:
            self._entries.clear()
        self._entries[key] = _Verified(windows, path[-1])


def _check_validity(windows: Iterable[_Window], now: datetime) -> None:
    for not_before, not_after, subject in windows:
        if not not_before <= now <= not_after:
            name = subject.rfc4514_string()
            raise CertificateExpired(f"certificate {name!r} is not valid at {now.isoformat()}")


def verify_certificate_chain(
    chain: CertificateChain,
    *,
    root: bytes,
    hash_algo: BaseHashAlgo,
    now: datetime,
    cache: SpdmChainCache | None = None,
) -> x509.Certificate:
    """Check ``chain`` against the trusted ``root`` (DER) at time ``now``; return the leaf.

    Raises :class:`ChainNotTrusted` (RootHash or any signature/issuer link wrong, chain out of
    order, a leaf that is a CA or whose KeyUsage lacks digitalSignature),
    :class:`CertificateExpired` (a certificate outside its validity at ``now``), or
    :class:`MalformedCertificate`. ``cache``: see the module docs (the same answer, cheaper).
    """
    return verify_certificate_chain_until(
        chain, root=root, hash_algo=hash_algo, now=now, cache=cache
    )[0]


def verify_certificate_chain_until(
    chain: CertificateChain,
    *,
    root: bytes,
    hash_algo: BaseHashAlgo,
    now: datetime,
    cache: SpdmChainCache | None = None,
) -> tuple[x509.Certificate, datetime]:
    """:func:`verify_certificate_chain`, returning the leaf and the first ``notAfter`` of the
    path it verified (the trusted root included): when what the chain proves stops holding."""
    if now.tzinfo is None:
        raise ConfigError("now must be a timezone-aware datetime")
    if cache is None:
        path = _verified_path(chain, root=root, hash_algo=hash_algo, now=now)
        return path[-1], min(c.not_valid_after_utc for c in path)
    key = (hash_algo, bytes(root), chain.root_hash, chain.certificates)
    known = cache._get(key)
    if known is not None:
        _check_validity(known.windows, now)
        return known.leaf, min(not_after for _, not_after, _ in known.windows)
    path = _verified_path(chain, root=root, hash_algo=hash_algo, now=now)
    if len(path) > 1:
        cache._put(key, path)
    return path[-1], min(c.not_valid_after_utc for c in path)


def _verified_path(
    chain: CertificateChain, *, root: bytes, hash_algo: BaseHashAlgo, now: datetime
) -> tuple[x509.Certificate, ...]:
    """The path root to leaf, every check of :func:`verify_certificate_chain` done."""
    if not hmac.compare_digest(chain.root_hash, base_hash(hash_algo, root)):
        raise ChainNotTrusted("SPDM RootHash does not match the trusted root certificate")
    anchor = _load(root, "trusted root")
    certs = chain.x509()
    path = certs if chain.certificates[0] == root else [anchor, *certs]
    _check_validity(((c.not_valid_before_utc, c.not_valid_after_utc, c.subject) for c in path), now)
    if len(path) == 1:  # the chain is the trusted root itself, so the root is the leaf
        _check_leaf(anchor)
        return (anchor,)
    verifier = (
        verification.PolicyBuilder()
        .store(verification.Store([anchor]))
        .time(now)
        .extension_policies(ca_policy=_CA_POLICY, ee_policy=_EE_POLICY)
        .build_client_verifier()
    )
    try:
        verified = verifier.verify(path[-1], path[1:-1])
    except verification.VerificationError as exc:
        raise ChainNotTrusted(f"SPDM certificate chain does not verify: {exc}") from exc
    if list(reversed(verified.chain)) != path:
        raise ChainNotTrusted("SPDM certificate chain is not in root-to-leaf order")
    _check_leaf(path[-1])
    return tuple(path)


@functools.cache
def _dice_parsers() -> dict[str, Callable[[bytes], object]]:
    """The DICE extensions' parsers by OID, built at the first critical DICE extension met
    (the parsers' module is loaded only then: most SPDM chains never need it)."""
    from ironroot.rot import dice

    return {
        dice.TCB_INFO_OID.dotted_string: dice.parse_tcb_info,
        dice.MULTI_TCB_INFO_OID.dotted_string: dice.parse_multi_tcb_info,
        dice.UEID_OID.dotted_string: dice.parse_ueid,
        dice.OPEN_DICE_OID.dotted_string: dice.parse_open_dice_input,
    }


def _check_dice_extension(oid: str, value: bytes) -> None:
    """A critical DICE extension is processed only if it decodes (as :mod:`ironroot.rot.dice`
    requires of its chains)."""
    parsers = _dice_parsers()
    try:
        parsers[oid](value)
    except IronrootError as exc:
        raise ValueError(f"critical DICE extension {oid} does not decode: {exc.detail}") from exc


def _check_ca_key_usage(
    _policy: verification.Policy, _cert: x509.Certificate, usage: x509.KeyUsage | None
) -> None:
    """An issuer's KeyUsage, when present, asserts keyCertSign (RFC 5280 6.1.4 (n), as mbedTLS
    checks under libspdm): ``permit_all`` leaves KeyUsage unchecked."""
    if usage is not None and not usage.key_cert_sign:
        raise ValueError("a CA certificate's KeyUsage lacks keyCertSign")


# The device's certificates: cryptography's checks (every CA asserts BasicConstraints, and
# keyCertSign when it has KeyUsage), with the DICE extensions declared (a DICE chain marks them
# critical), every other unknown critical extension refused (RFC 5280 4.2).
_CA_POLICY: Final = DICE_EXTENSIONS.extension_policy(
    verification.ExtensionPolicy.permit_all()
    .require_present(x509.BasicConstraints, verification.Criticality.AGNOSTIC, None)
    .may_be_present(x509.KeyUsage, verification.Criticality.AGNOSTIC, _check_ca_key_usage),
    check=_check_dice_extension,
)
_EE_POLICY: Final = DICE_EXTENSIONS.extension_policy(
    verification.ExtensionPolicy.permit_all(), check=_check_dice_extension
)


def _check_leaf(leaf: x509.Certificate) -> None:
    """The leaf's key may sign SPDM messages: not a CA (BasicConstraints CA:TRUE) and, when it
    has KeyUsage, digitalSignature in it (RFC 5280 4.2.1.3), and not an ExtendedKeyUsage of
    SPDM requester authentication without responder authentication (libspdm refuses all three).
    A CA certificate sent as the leaf would otherwise pass the path check."""
    # The first extension of each kind, in one pass (as get_extension_for_class finds each).
    constraints: x509.BasicConstraints | None = None
    usage: x509.KeyUsage | None = None
    purposes: x509.ExtendedKeyUsage | None = None
    for extension in leaf.extensions:
        value = extension.value
        if constraints is None and isinstance(value, x509.BasicConstraints):
            constraints = value
        elif usage is None and isinstance(value, x509.KeyUsage):
            usage = value
        elif purposes is None and isinstance(value, x509.ExtendedKeyUsage):
            purposes = value
    if constraints is not None and constraints.ca:
        raise ChainNotTrusted("the SPDM leaf certificate is a CA (BasicConstraints CA:TRUE)")
    if usage is not None and not usage.digital_signature:
        raise ChainNotTrusted("the SPDM leaf certificate's KeyUsage lacks digitalSignature")
    if purposes is None:
        return
    if EKU_REQUESTER_AUTH in purposes and EKU_RESPONDER_AUTH not in purposes:
        raise ChainNotTrusted("the SPDM leaf certificate is for requester authentication only")
