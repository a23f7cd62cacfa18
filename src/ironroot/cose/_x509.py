"""X.509 for Signed Statements: x5chain path validation (RFC 9360) and did:x509 matching.

Path validation uses ``cryptography.x509.verification`` (RFC 5280 path building with the
CA/Browser-Forum "webpki" profile) with two settings: the caller's ``now`` as the validation
time, and an end-entity extension policy that permits any extended key usage (statement signers
use codeSigning, document-signing or private EKUs, not TLS ones); after it, a leaf with a
KeyUsage must assert digitalSignature (RFC 5280 §4.2.1.3), so a CA certificate (keyCertSign,
cRLSign) is not taken for a statement signer's. CA certificates keep the
library's default CA policy (basicConstraints CA, path length, keyUsage keyCertSign). That profile
refuses CA certificates whose keys are Ed25519; an Ed25519 leaf under an ECDSA, RSA or ML-DSA CA
verifies. It refuses a critical extension it does not know (RFC 5280 §4.2); the DICE
extensions (TcbInfo, MultiTcbInfo, UEID, Open DICE: :data:`ironroot.crypto.DICE_EXTENSIONS`),
which DICE certificates mark critical, are declared to it, by OID, as extensions that may be
present in any certificate of the path (their content is the DICE verifier's to read, not this
one's: no statement signature depends on it). Validity at ``now`` is checked first on every
supplied certificate so an expired or not-yet-valid one is reported as ``CertificateExpired``
rather than a generic path failure.
The supplied chain must be the validated path itself, in order (the root may be left out;
past a trust anchor that is an intermediate only that anchor's issuers, each checked to have
signed the one before): the library takes the certificates after the leaf as an unordered pool
and would leave an extra one unused, and an unused certificate must not be there for a did:x509
fingerprint to match.

did:x509 follows the did:x509 method specification v0 (Trust over IP / DIF, as profiled by
draft-birkholz-did-x509): ``did:x509:0:<sha256|sha384|sha512>:<base64url fingerprint of a CA
certificate in the chain (never the leaf)>`` then one or more ``::<policy>:<value>`` with the
policies ``subject``, ``san`` (email, dns, uri), ``eku`` and ``fulcio-issuer``; values are
percent-encoded (only ``A-Z a-z 0-9 - . _`` stand for themselves). The certificate fields are
compared through the method's JSON data model, so a subject attribute that appears more than
once in the leaf never matches, and attribute types with a label (CN, L, ST, O, OU, C, STREET)
match only by that label. No library implements did:x509, hence the hand-written matcher.
"""

from __future__ import annotations

import hashlib
import itertools
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Final
from urllib.parse import unquote

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.exceptions import UnsupportedAlgorithm as _LibraryUnsupported
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtensionOID
from cryptography.x509.verification import (
    Criticality,
    ExtensionPolicy,
    PolicyBuilder,
    Store,
    VerificationError,
)

from ironroot.cose._cbor import DEFAULT_LIMITS, Limits
from ironroot.crypto import DICE_EXTENSIONS, PublicKey, b64url_encode, load_certificate
from ironroot.errors import CertificateExpired, ChainNotTrusted, MalformedInput

__all__ = ["verify_did_x509", "verify_x5chain"]


def _load(der: bytes) -> x509.Certificate:
    if not isinstance(der, bytes) or not der:
        raise MalformedInput("a certificate must be non-empty DER bytes")
    return load_certificate(der, what="x5chain certificate", der_only=True)


def _aware(now: datetime) -> datetime:
    return now.replace(tzinfo=UTC) if now.tzinfo is None else now.astimezone(UTC)


# CA certificates: the Web PKI profile, except that an EKU on a CA is not checked against a TLS
# usage (DICE CAs carry tcg-dice key purposes there); in any certificate, the DICE extensions.
_CA_POLICY: Final = DICE_EXTENSIONS.extension_policy(
    ExtensionPolicy.webpki_defaults_ca().may_be_present(
        x509.ExtendedKeyUsage, Criticality.AGNOSTIC, None
    )
)
_EE_POLICY: Final = DICE_EXTENSIONS.extension_policy(ExtensionPolicy.permit_all())


def verify_x5chain(
    chain: Sequence[bytes],
    roots: Sequence[x509.Certificate],
    now: datetime,
    limits: Limits = DEFAULT_LIMITS,
    *,
    leaf_signs: bool = True,
) -> PublicKey:
    """Validate ``chain`` (DER, leaf first) to one of ``roots`` at ``now``; return the leaf key.

    Raises ``MalformedInput`` for an empty, over-long or unparsable chain (or a leaf key this
    suite cannot use), ``CertificateExpired`` if a supplied certificate is outside its validity
    period at ``now``, and ``ChainNotTrusted`` if no valid path reaches a root (an empty
    ``roots`` trusts nothing), ``chain`` is not that path in order (RFC 9360: each
    certificate followed by its issuer; the root may be left out, and past a configured
    intermediate only its issuers may follow), or, with ``leaf_signs`` (the leaf key verifies
    a message's signature, as x5chain's does), the leaf has a KeyUsage without
    digitalSignature (a CA certificate as the leaf) or is a CA without one.
    ``leaf_signs=False`` is for a chain whose leaf certifies another key instead (an HSM's
    device chain, which may end in a device CA).
    A naive ``now`` is taken as UTC.
    """
    if not chain:
        raise MalformedInput("x5chain is empty")
    if len(chain) > limits.max_x5chain:
        raise MalformedInput(f"x5chain of {len(chain)} certificates exceeds {limits.max_x5chain}")
    certs = [_load(der) for der in chain]
    at = _aware(now)
    for cert in certs:
        if not cert.not_valid_before_utc <= at <= cert.not_valid_after_utc:
            raise CertificateExpired(
                f"certificate {cert.subject.rfc4514_string()!r} is not valid at {at.isoformat()}"
            )
    if not roots:
        raise ChainNotTrusted("no trusted roots are configured")
    verifier = (
        PolicyBuilder()
        .store(Store(list(roots)))
        .time(at)
        .max_chain_depth(limits.max_x5chain)
        .extension_policies(
            ca_policy=_CA_POLICY,
            ee_policy=_EE_POLICY,
        )
        .build_client_verifier()
    )
    try:
        path = verifier.verify(certs[0], certs[1:]).chain
    except VerificationError as exc:
        raise ChainNotTrusted(f"x5chain does not validate to a trusted root: {exc}") from exc
    except ValueError as exc:  # an extension the verifier cannot parse
        raise MalformedInput(f"x5chain certificate does not parse: {exc}") from exc
    _check_ordered(certs, path)
    if leaf_signs:
        _check_leaf_usage(certs[0])
    return PublicKey(certs[0].public_key())  # type: ignore[arg-type]


def _check_leaf_usage(leaf: x509.Certificate) -> None:
    """The leaf's key may sign what the caller verifies with it: when the leaf has KeyUsage,
    digitalSignature is in it (RFC 5280 4.2.1.3: keyCertSign and cRLSign alone let a key sign
    only certificates and CRLs). The end-entity policy permits any extension, so a CA
    certificate sent as the leaf, its issuer left out, would otherwise pass. A CA leaf without
    KeyUsage (which RFC 5280 requires of a CA) is refused too: nothing grants its key
    signatures; one whose KeyUsage asserts digitalSignature (a DICE alias) may sign."""
    usage = _extension(leaf, ExtensionOID.KEY_USAGE)
    if isinstance(usage, x509.KeyUsage):
        if not usage.digital_signature:
            raise ChainNotTrusted(
                "the x5chain leaf certificate's KeyUsage lacks digitalSignature: its key may "
                "not sign statements (RFC 5280 4.2.1.3)"
            )
        return
    constraints = _extension(leaf, ExtensionOID.BASIC_CONSTRAINTS)
    if isinstance(constraints, x509.BasicConstraints) and constraints.ca:
        raise ChainNotTrusted(
            "the x5chain leaf certificate is a CA without a KeyUsage asserting digitalSignature: "
            "its key may not sign statements (RFC 5280 4.2.1.3)"
        )


def _check_ordered(certs: list[x509.Certificate], path: list[x509.Certificate]) -> None:
    """``certs`` is ``path`` (leaf to trust anchor) in order, continued past the anchor, if at
    all, by each certificate's own issuer (a chain up to its root when an intermediate is the
    configured anchor). The verifier takes ``certs[1:]`` as an unordered pool and may leave
    some unused: a certificate riding along off the path would match a did:x509 fingerprint."""
    if certs[: len(path)] != path[: len(certs)]:
        raise ChainNotTrusted("x5chain is not the ordered path from its leaf to a trusted root")
    for child, issuer in itertools.pairwise(certs[len(path) - 1 :]):
        try:
            child.verify_directly_issued_by(issuer)
        except (ValueError, TypeError, InvalidSignature, _LibraryUnsupported) as exc:
            raise ChainNotTrusted(
                "x5chain is not the ordered path from its leaf to a trusted root"
            ) from exc


# --- did:x509 ----------------------------------------------------------------------------

_PREFIX: Final = "did:x509:"
_FINGERPRINT_LENGTHS: Final = {"sha256": 43, "sha384": 64, "sha512": 86}
_BASE64URL: Final = re.compile(r"[A-Za-z0-9_-]+")
_IDCHARS: Final = re.compile(r"(?:[A-Za-z0-9._-]|%[0-9A-Fa-f]{2})+")
_OID: Final = re.compile(r"[0-9]+(?:\.[0-9]+)*")
_NAME_LABELS: Final = {
    "2.5.4.3": "CN",
    "2.5.4.7": "L",
    "2.5.4.8": "ST",
    "2.5.4.10": "O",
    "2.5.4.11": "OU",
    "2.5.4.6": "C",
    "2.5.4.9": "STREET",
}
_FULCIO_ISSUER: Final = x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.1")


def _decode_value(value: str) -> str:
    if not _IDCHARS.fullmatch(value):
        raise MalformedInput(f"did:x509 value {value!r} is not percent-encoded")
    try:
        return unquote(value, errors="strict")
    except UnicodeDecodeError as exc:
        raise MalformedInput("did:x509 value is not UTF-8 once decoded") from exc


def _parse_did(did: str) -> tuple[str, str, list[tuple[str, str]]]:
    if not isinstance(did, str) or not did.startswith(_PREFIX):
        raise MalformedInput("not a did:x509 identifier")
    parts = did[len(_PREFIX) :].split("::")
    head = parts[0].split(":")
    if len(head) != 3:
        raise MalformedInput("did:x509 needs version:hash-alg:ca-fingerprint")
    version, alg, fingerprint = head
    if version != "0":
        raise MalformedInput(f"unsupported did:x509 version {version!r}")
    if alg not in _FINGERPRINT_LENGTHS:
        raise MalformedInput(f"unsupported did:x509 fingerprint algorithm {alg!r}")
    if not _BASE64URL.fullmatch(fingerprint) or len(fingerprint) != _FINGERPRINT_LENGTHS[alg]:
        raise MalformedInput("did:x509 CA fingerprint is not a base64url digest")
    policies = []
    for raw in parts[1:]:
        name, sep, value = raw.partition(":")
        if not sep or not name or not value:
            raise MalformedInput(f"did:x509 policy {raw!r} is not name:value")
        policies.append((name, value))
    if not policies:
        raise MalformedInput("did:x509 needs at least one policy")
    return alg, fingerprint, policies


def _fingerprint(cert: x509.Certificate, alg: str) -> str:
    digest = hashlib.new(alg, cert.public_bytes(Encoding.DER)).digest()
    return b64url_encode(digest)


def _subject_model(cert: x509.Certificate) -> dict[str, str | None]:
    """The JSON-model subject; ``None`` marks a repeated (unsupported, never matching) type."""
    out: dict[str, str | None] = {}
    for attr in cert.subject:
        oid = attr.oid.dotted_string
        key = _NAME_LABELS.get(oid, oid)
        value = attr.value if isinstance(attr.value, str) else None
        out[key] = None if key in out else value
    return out


def _extension(cert: x509.Certificate, oid: x509.ObjectIdentifier) -> x509.ExtensionType | None:
    try:
        return cert.extensions.get_extension_for_oid(oid).value
    except x509.ExtensionNotFound:
        return None
    except (ValueError, x509.DuplicateExtension, x509.UnsupportedGeneralNameType) as exc:
        raise MalformedInput(f"certificate extension does not parse: {exc}") from exc


def _subject_policy(value: str, leaf: x509.Certificate) -> bool:
    items = value.split(":")
    if len(items) % 2:
        raise MalformedInput("did:x509 subject policy needs key:value pairs")
    wanted: dict[str, str] = {}
    for key, encoded in zip(items[0::2], items[1::2], strict=True):
        if key not in _NAME_LABELS.values() and not _OID.fullmatch(key):
            raise MalformedInput(f"did:x509 subject key {key!r} is neither a label nor an OID")
        if key in wanted:
            raise MalformedInput(f"did:x509 subject key {key!r} is repeated")
        wanted[key] = _decode_value(encoded)
    subject = _subject_model(leaf)
    return all(subject.get(key) == expected for key, expected in wanted.items())


def _san_policy(value: str, leaf: x509.Certificate) -> bool:
    san_type, sep, encoded = value.partition(":")
    if not sep or ":" in encoded:
        raise MalformedInput("did:x509 san policy is san-type:value")
    expected = _decode_value(encoded)
    kinds: dict[str, type[x509.GeneralName]] = {
        "email": x509.RFC822Name,
        "dns": x509.DNSName,
        "uri": x509.UniformResourceIdentifier,
    }
    if san_type not in kinds:
        raise MalformedInput(f"unsupported did:x509 san type {san_type!r}")
    san = _extension(leaf, ExtensionOID.SUBJECT_ALTERNATIVE_NAME)
    if not isinstance(san, x509.SubjectAlternativeName):
        return False
    return expected in san.get_values_for_type(kinds[san_type])  # type: ignore[arg-type]


def _eku_policy(value: str, leaf: x509.Certificate) -> bool:
    if not _OID.fullmatch(value):
        raise MalformedInput("did:x509 eku policy value must be an OID")
    eku = _extension(leaf, ExtensionOID.EXTENDED_KEY_USAGE)
    if not isinstance(eku, x509.ExtendedKeyUsage):
        return False
    return any(usage.dotted_string == value for usage in eku)


def _fulcio_policy(value: str, leaf: x509.Certificate) -> bool:
    expected = "https://" + _decode_value(value)
    ext = _extension(leaf, _FULCIO_ISSUER)
    if not isinstance(ext, x509.UnrecognizedExtension):
        return False
    try:
        return ext.value.decode("utf-8") == expected
    except UnicodeDecodeError:
        return False


_POLICIES: Final = {
    "subject": _subject_policy,
    "san": _san_policy,
    "eku": _eku_policy,
    "fulcio-issuer": _fulcio_policy,
}


def verify_did_x509(did: str, chain: Sequence[x509.Certificate]) -> None:
    """Check that ``chain`` (leaf first) matches the did:x509 identifier ``did``.

    Matching only: validate the chain itself with :func:`verify_x5chain`. Raises
    ``MalformedInput`` if the DID is malformed or names a policy this module does not
    implement, and ``ChainNotTrusted`` if the fingerprint matches no CA certificate of the
    chain (a chain needs at least two certificates) or a policy does not hold for the leaf.
    """
    alg, fingerprint, policies = _parse_did(did)
    for name, _ in policies:
        if name not in _POLICIES:
            raise MalformedInput(f"unsupported did:x509 policy {name!r}")
    if len(chain) < 2:
        raise ChainNotTrusted("did:x509 needs a chain of at least a leaf and its CA")
    if not any(_fingerprint(cert, alg) == fingerprint for cert in chain[1:]):
        raise ChainNotTrusted("the did:x509 fingerprint matches no CA certificate in the chain")
    leaf = chain[0]
    for name, value in policies:
        if not _POLICIES[name](value, leaf):
            raise ChainNotTrusted(f"the leaf certificate does not satisfy the {name} policy")
