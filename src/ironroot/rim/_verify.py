"""Verify a SWID-tag RIM: its enveloped XML-DSig signature, its chain to NVIDIA's RIM root, and
the validity dates of that chain at ``now``.

:func:`verify_rim`, in order (each step raises the exact error; nothing is read from the RIM
until every step passed):

1. **parse** with the hardened parser (:func:`._model.parse_xml`): ``MalformedRim``,
   ``LimitExceeded`` (size, DTD, entities, not a SWID tag, an element with more attributes
   or namespaces in scope than :class:`~ironroot.rim.RimLimits` allows);
2. **the signature element**: exactly one ``ds:Signature`` in the document, a child of
   ``SoftwareIdentity``; one ``Reference`` with ``URI=""`` (the whole tag); signature method
   ``ecdsa-sha384``, SignedInfo canonicalized by Canonical XML 1.1, the reference's transforms
   exactly enveloped-signature then Canonical XML 1.1 (no comments, XPath or base64), and
   digest ``sha384`` (``AlgorithmNotAccepted`` otherwise), as every NVIDIA RIM is signed;
3. **the chain** in ``KeyInfo/X509Data`` (leaf first, as NVIDIA ships it, at most
   ``max_certificates``): from the leaf, each certificate must be issued by the next one found
   among the embedded certificates, until one is issued by a trusted root (the built-in NVIDIA
   RIM root unless ``roots`` says otherwise); every issuer a CA within its path length, with
   ``keyCertSign`` when it states a key usage; the leaf not a CA and allowed
   ``digitalSignature``; no certificate below the root carrying a critical extension but the
   standard ones (RFC 5280 §4.2). Anything else is ``ChainNotTrusted``. An embedded copy of
   the root is never trusted for its own sake: only the pinned certificate closes the chain;
4. **the signature**, by ``signxml`` (enveloped-signature transform, Canonical XML 1.1, digest,
   ECDSA) under the leaf's key: ``BadSignature`` for a changed byte anywhere in the signed tag;
5. **validity**: every certificate of the chain, root included, valid at ``now``
   (``CertificateExpired``);
6. the fields are read from the XML **the signature covers** (signxml's ``signed_xml``), never
   from the document as received: ``MalformedRim`` when they do not make a RIM.

Why the chain walk is written here: ``cryptography``'s RFC 5280 path validator (which signxml
uses for ``ca_pem_file``) refuses NVIDIA's intermediate certificates, whose validity dates
before 2050 are GeneralizedTime ("validity dates between 1950 and 2049 must be UtcTime"), so no
library validates the chain NVIDIA ships. The walk only glues ``cryptography`` calls
(``verify_directly_issued_by``, the parsed extensions) to the typed errors. Canonicalization and
the XML-DSig processing are signxml's, never hand-written.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
from collections.abc import Sequence
from typing import Any, Final

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.serialization import Encoding
from lxml import etree  # type: ignore[import-untyped]  # lxml ships no stubs

from ironroot.crypto import ExtensionProfile, load_certificate
from ironroot.errors import (
    AlgorithmNotAccepted,
    BadSignature,
    CertificateExpired,
    ChainNotTrusted,
    MalformedRim,
)
from ironroot.rim._model import (
    DEFAULT_RIM_LIMITS,
    DSIG_NS,
    Rim,
    RimLimits,
    parse_xml,
    rim_from_signed,
    xml_parser,
)
from ironroot.rim._roots import builtin_rim_roots
from ironroot.rim._time import utc

__all__ = ["verify_rim"]

_ECDSA_SHA384: Final = "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha384"
_SHA384: Final = "http://www.w3.org/2001/04/xmldsig-more#sha384"
_C14N11: Final = "http://www.w3.org/2006/12/xml-c14n11"
_ENVELOPED: Final = "http://www.w3.org/2000/09/xmldsig#enveloped-signature"
_DS: Final = {"ds": DSIG_NS}
# What the chain walk processes (RFC 5280 §4.2): the standard extensions only.
_RIM_EXTENSIONS: Final = ExtensionProfile.of("NVIDIA RIM signing")


def _name(cert: x509.Certificate) -> str:
    names = cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    value = names[0].value if names else cert.subject.rfc4514_string()
    return value if isinstance(value, str) else value.decode("utf-8", "replace")


def _signature_element(root: Any) -> Any:
    signatures = list(root.iter(f"{{{DSIG_NS}}}Signature"))
    if len(signatures) != 1 or signatures[0].getparent() is not root:
        raise MalformedRim(
            "a RIM carries exactly one enveloped ds:Signature, a child of SoftwareIdentity"
        )
    signature = signatures[0]
    method = signature.find("ds:SignedInfo/ds:SignatureMethod", _DS)
    if method is None or method.get("Algorithm") != _ECDSA_SHA384:
        found = None if method is None else method.get("Algorithm")
        raise AlgorithmNotAccepted(f"RIM signature method {found!r} is not ECDSA-SHA384")
    references = signature.findall("ds:SignedInfo/ds:Reference", _DS)
    if len(references) != 1 or references[0].get("URI") != "":
        raise MalformedRim('a RIM signature has exactly one Reference, URI="" (the whole tag)')
    c14n = signature.find("ds:SignedInfo/ds:CanonicalizationMethod", _DS)
    transforms = [
        t.get("Algorithm") for t in references[0].findall("ds:Transforms/ds:Transform", _DS)
    ]
    if c14n is None or c14n.get("Algorithm") != _C14N11 or transforms != [_ENVELOPED, _C14N11]:
        found = None if c14n is None else c14n.get("Algorithm")
        raise AlgorithmNotAccepted(
            f"a RIM is canonicalized with Canonical XML 1.1 after the enveloped-signature "
            f"transform, not {found!r} with transforms {transforms!r}"
        )
    digest = references[0].find("ds:DigestMethod", _DS)
    if digest is None or digest.get("Algorithm") != _SHA384:
        found = None if digest is None else digest.get("Algorithm")
        raise AlgorithmNotAccepted(f"RIM digest method {found!r} is not SHA-384")
    return signature


def _certificates(signature: Any, limits: RimLimits) -> list[x509.Certificate]:
    elements = signature.findall("ds:KeyInfo/ds:X509Data/ds:X509Certificate", _DS)
    if not elements:
        raise ChainNotTrusted("the RIM's KeyInfo carries no X509Certificate")
    if len(elements) > limits.max_certificates:
        raise MalformedRim(
            f"the RIM carries {len(elements)} certificates, over {limits.max_certificates}"
        )
    certs = []
    for number, element in enumerate(elements):
        text = "".join((element.text or "").split())
        try:
            der = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise MalformedRim(f"RIM certificate {number} is not base64") from exc
        certs.append(load_certificate(der, what=f"RIM certificate {number}", der_only=True))
    return certs


def _issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def _extension(cert: x509.Certificate, kind: type[Any]) -> Any:
    try:
        return cert.extensions.get_extension_for_class(kind).value
    except x509.ExtensionNotFound:
        return None


def _check_roles(chain: Sequence[x509.Certificate]) -> None:
    """The leaf signs documents; every issuer above it is a CA within its path length."""
    leaf = chain[0]
    constraints = _extension(leaf, x509.BasicConstraints)
    if constraints is not None and constraints.ca:
        raise ChainNotTrusted(f"the RIM signing certificate {_name(leaf)!r} is a CA")
    usage = _extension(leaf, x509.KeyUsage)
    if usage is not None and not usage.digital_signature:
        raise ChainNotTrusted(f"the RIM signing certificate {_name(leaf)!r} may not sign")
    for position, cert in enumerate(chain[1:], start=1):
        constraints = _extension(cert, x509.BasicConstraints)
        if constraints is None or not constraints.ca:
            raise ChainNotTrusted(f"RIM chain certificate {_name(cert)!r} is not a CA")
        below = position - 1  # CA certificates between this one and the leaf
        if constraints.path_length is not None and below > constraints.path_length:
            raise ChainNotTrusted(f"RIM chain certificate {_name(cert)!r}: path too long")
        usage = _extension(cert, x509.KeyUsage)
        if usage is not None and not usage.key_cert_sign:
            raise ChainNotTrusted(f"RIM chain certificate {_name(cert)!r} may not issue")


def _chain(
    certs: Sequence[x509.Certificate], roots: Sequence[x509.Certificate]
) -> list[x509.Certificate]:
    """``[leaf, intermediates…, root]`` ending in one of ``roots`` (module docs, step 3)."""
    chain = [certs[0]]
    pool = list(certs[1:])
    current = certs[0]
    for _ in range(len(certs) + 1):
        root = next((r for r in roots if _issued_by(current, r)), None)
        if root is not None:
            chain.append(root)
            _check_roles(chain)
            for cert in chain[:-1]:  # below the pinned root (RFC 5280 §4.2)
                _RIM_EXTENSIONS.check(cert)
            return chain
        issuer = next((c for c in pool if c is not current and _issued_by(current, c)), None)
        if issuer is None or issuer.public_bytes(Encoding.DER) == current.public_bytes(
            Encoding.DER
        ):
            break
        pool.remove(issuer)
        chain.append(issuer)
        current = issuer
    raise ChainNotTrusted(
        f"the RIM's signing chain ({' -> '.join(_name(c) for c in chain)}) does not reach "
        f"a trusted RIM root ({', '.join(_name(r) for r in roots) or 'none configured'})"
    )


def _check_validity(chain: Sequence[x509.Certificate], at: dt.datetime) -> None:
    for cert in chain:
        if at < cert.not_valid_before_utc:
            raise CertificateExpired(
                f"RIM certificate {_name(cert)!r} is not valid before "
                f"{cert.not_valid_before_utc.isoformat()}"
            )
        if at > cert.not_valid_after_utc:
            raise CertificateExpired(
                f"RIM certificate {_name(cert)!r} expired at "
                f"{cert.not_valid_after_utc.isoformat()}: the RIM is expired"
            )


def _signed_xml(data: bytes, leaf: x509.Certificate, at: dt.datetime) -> Any:
    """The XML the signature covers, verified by signxml under ``leaf``'s key (signxml checks
    the leaf's validity at ``at``, the time the chain was checked at, not at its own clock)."""
    from signxml.algorithms import DigestAlgorithm, SignatureMethod
    from signxml.exceptions import InvalidSignature as XmlInvalidSignature
    from signxml.exceptions import SignXMLException
    from signxml.verifier import SignatureConfiguration, XMLVerifier

    config = SignatureConfiguration(
        location="./",
        expect_references=1,
        signature_methods=frozenset({SignatureMethod.ECDSA_SHA384}),
        digest_algorithms=frozenset({DigestAlgorithm.SHA384}),
        verification_time=at,
    )
    try:
        result = XMLVerifier().verify(
            bytes(data), x509_cert=leaf, parser=xml_parser(), expect_config=config
        )
    except (XmlInvalidSignature, InvalidSignature) as exc:
        raise BadSignature(f"the RIM's XML signature does not verify: {exc}") from exc
    except (SignXMLException, etree.LxmlError, ValueError, TypeError, LookupError) as exc:
        raise MalformedRim(f"the RIM's signature cannot be processed: {exc}") from exc
    signed = getattr(result, "signed_xml", None)
    if signed is None:
        raise MalformedRim("the RIM's signed content is not XML")
    return signed


def verify_rim(
    data: bytes,
    *,
    now: dt.datetime,
    roots: Sequence[x509.Certificate] | None = None,
    limits: RimLimits = DEFAULT_RIM_LIMITS,
) -> Rim:
    """The verified RIM in ``data`` (module docs), or the exact error refusing it.

    ``roots`` are the trusted RIM roots: by default the built-in, pinned NVIDIA RIM root
    (:func:`ironroot.rim.builtin_rim_roots`); an empty sequence trusts nothing. ``now`` must
    be timezone-aware (``ConfigError``)."""
    at = utc(now)
    trusted = builtin_rim_roots() if roots is None else tuple(roots)
    root = parse_xml(data, limits)
    signature = _signature_element(root)
    certs = _certificates(signature, limits)
    if not trusted:
        raise ChainNotTrusted("no RIM root is trusted")
    chain = _chain(certs, trusted)
    _check_validity(chain, at)
    signed = _signed_xml(data, chain[0], at)
    return rim_from_signed(
        signed,
        limits,
        signer=_name(chain[0]),
        chain=tuple(c.public_bytes(Encoding.DER) for c in chain),
        not_before=max(c.not_valid_before_utc for c in chain),
        not_after=min(c.not_valid_after_utc for c in chain),
        digest=hashlib.sha384(bytes(data)).digest(),
    )
