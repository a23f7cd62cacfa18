"""Verify an AMD SEV-SNP report: signature, VCEK/VLEK chain to a built-in ARK, TCB and chip id.

The steps, in order (each failure is one typed error):

1. Size (``MalformedEvidence``): exactly 1184 bytes.
2. Signature (``BadSignature``): ECDSA P-384/SHA-384 over bytes 0x000–0x29F with the public key
   of a supplied VCEK or VLEK; the little-endian 72-byte R and S are turned into the COSE r‖s
   form and checked by :meth:`ironroot.crypto.PublicKey.verify`. The unused high bytes of R
   and S and the reserved tail of the signature block must be zero, so no bit of the report
   can change without this step failing. The signature is checked before any field is trusted.
3. Fields (``MalformedEvidence``): version 2–5, signature algorithm 1.
4. Chain (``ChainNotTrusted``, ``CertificateExpired``): VCEK → ASK or VLEK → ASVK → ARK, each
   link an RSASSA-PSS SHA-384 signature checked by ``cryptography``; the ARK must be one of the
   built-in, pinned AMD roots (a supplied self-signed certificate that is not one of them is
   refused); every certificate valid at ``now``. A supplied ASK/ASVK other than the built-in
   one is accepted only if the built-in ARK signed it.
5. Endorsement (``EndorsementMismatch``): the report's SIGNING_KEY names the kind of leaf that
   verified it; the leaf's product name (OID 1.3.6.1.4.1.3704.1.2) and the report's CPUID
   family/model name the chain's product; the leaf's TCB extensions (1.3.6.1.4.1.3704.1.3.1
   boot loader, .3.2 TEE, .3.3 SNP, .3.8 microcode, and .3.9 FMC on Turin) equal REPORTED_TCB
   decoded in that product's layout, whose reserved bytes (no extension endorses them) must
   be zero; a VCEK's hwID (1.3.6.1.4.1.3704.1.4) equals CHIP_ID (all
   64 bytes; the first 8 on Turin, the rest zero). A VLEK has no hwID. When the platform masks
   CHIP_ID (all zero) the hwID cannot be compared and ``identity["chip_id"]`` is empty.
   Every compared field is reported with both values: in the check's detail and in
   ``raw["endorsement"]`` (``[{"field", "report", "certificate", "equal"}]``).
6. Revocation (``CertificateRevoked``, ``CollateralExpired``), when CRLs are given: AMD's KDS
   serves one CRL per product (``/vcek/v1/<product>/crl``), issued by the ARK and signed
   RSASSA-PSS SHA-384, that lists revoked ASKs and ASVKs; each certificate of the chain is
   checked against the CRL of its issuer (see :mod:`._revocation`), and a CRL past its
   ``nextUpdate`` is refused unless stale collateral is allowed (it is then listed in
   ``raw["stale_collateral"]``). Without CRLs the check is recorded as not run.

Chain checks can be cached (:class:`SnpChainCache`): the RSA signature checks of a
(leaf, intermediate, root) triple are done once; validity at ``now`` is checked every time.

Azure confidential VMs wrap the report in an HCL report (vTPM NV index 0x01400001):
a 32-byte header (``HCLA``, version, report size, request type, reserved), the 1184-byte SNP
report, then the runtime data (data size, version, report type 2 = SNP, hash type 1/2/3 =
SHA-256/384/512, claims size) and the runtime claims JSON. The SNP REPORT_DATA starts with the
hash of those claims (the rest zero); :func:`verify_azure_hcl_report` checks that binding.
"""

from __future__ import annotations

import hashlib
import json
import math
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from cryptography import x509

from ironroot._json import DECODER as STRICT_JSON
from ironroot.attestation.evidence._certs import (
    CertificateInput,
    check_validity,
    earliest,
    fingerprint,
    load_certificates,
    subject_text,
    verify_issued_by,
)
from ironroot.attestation.evidence._claims import CheckLog, EvidenceClaims
from ironroot.attestation.evidence._revocation import (
    StaleCollateral,
    chain_has_crl,
    check_chain_revocation,
)
from ironroot.attestation.evidence._roots import SnpTrustAnchor, builtin_snp_anchors
from ironroot.attestation.evidence._snp import (
    SNP_REPORT_SIZE,
    SNP_SIGNED_SIZE,
    SnpProduct,
    SnpReport,
    SnpSigningKey,
    TcbVersion,
    parse_snp_report,
)
from ironroot.crypto import Algorithm, ExtensionProfile, PublicKey
from ironroot.errors import (
    BadSignature,
    ChainNotTrusted,
    EndorsementMismatch,
    MalformedEvidence,
    UnsupportedAlgorithm,
)

__all__ = [
    "AzureHclReport",
    "SnpChainCache",
    "check_snp_endorsement",
    "compare_snp_endorsement",
    "parse_azure_hcl_report",
    "snp_claims",
    "verify_azure_hcl_report",
    "verify_snp_chain",
    "verify_snp_report",
    "verify_snp_signature",
]

_AMD: Final = "1.3.6.1.4.1.3704.1"
_OID_PRODUCT: Final = x509.ObjectIdentifier(f"{_AMD}.2")
_OID_HWID: Final = x509.ObjectIdentifier(f"{_AMD}.4")
_OID_CSP_ID: Final = x509.ObjectIdentifier(f"{_AMD}.5")
_TCB_OIDS: Final = {
    "bootloader": x509.ObjectIdentifier(f"{_AMD}.3.1"),
    "tee": x509.ObjectIdentifier(f"{_AMD}.3.2"),
    "snp": x509.ObjectIdentifier(f"{_AMD}.3.3"),
    "microcode": x509.ObjectIdentifier(f"{_AMD}.3.8"),
    "fmc": x509.ObjectIdentifier(f"{_AMD}.3.9"),
}
# What the chain check processes (RFC 5280 §4.2): the standard extensions and the VCEK/VLEK
# extensions step 5 reads; any other critical extension below the ARK is refused.
_SNP_EXTENSIONS: Final = ExtensionProfile.of(
    "AMD SEV-SNP", _OID_PRODUCT, _OID_HWID, _OID_CSP_ID, *_TCB_OIDS.values()
)
_LEAF_NAMES: Final = {"SEV-VCEK": SnpSigningKey.VCEK, "SEV-VLEK": SnpSigningKey.VLEK}
_SIG_COMPONENT: Final = 72
_P384: Final = 48
_TURIN_HWID: Final = 8
# The bytes of TCB_VERSION that name no component (reserved), per layout: no VCEK/VLEK
# extension endorses them, so a REPORTED_TCB with any of them set is not the endorsed TCB.
_TCB_RESERVED: Final = {False: range(2, 6), True: range(4, 7)}


class SnpChainCache:
    """Remembers (leaf, intermediate, ARK) triples whose signatures verified.

    Validity periods are still checked on every use. Bounded: when full it starts over.
    """

    __slots__ = ("_entries", "_max")

    def __init__(self, max_entries: int = 1024) -> None:
        self._entries: dict[tuple[bytes, bytes, bytes], SnpProduct] = {}
        self._max = max_entries

    def get(self, key: tuple[bytes, bytes, bytes]) -> SnpProduct | None:
        return self._entries.get(key)

    def put(self, key: tuple[bytes, bytes, bytes], product: SnpProduct) -> None:
        if len(self._entries) >= self._max:
            self._entries.clear()
        self._entries[key] = product

    def __len__(self) -> int:
        return len(self._entries)


def _common_name(cert: x509.Certificate) -> str:
    names = cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    value = names[0].value if names else ""
    return value if isinstance(value, str) else value.decode("utf-8", "replace")


def _leaf_kind(cert: x509.Certificate) -> SnpSigningKey | None:
    return _LEAF_NAMES.get(_common_name(cert))


def verify_snp_signature(report: bytes, key: PublicKey) -> None:
    """Check the report's ECDSA P-384/SHA-384 signature with ``key``; raise ``BadSignature``.

    Works on the raw 1184 bytes before any field is interpreted (``MalformedEvidence`` only
    for a wrong size).
    """
    if len(report) != SNP_REPORT_SIZE:
        raise MalformedEvidence(
            f"an SNP report is {SNP_REPORT_SIZE} bytes, this one is {len(report)}"
        )
    block = report[SNP_SIGNED_SIZE:]
    r, s = block[:_SIG_COMPONENT], block[_SIG_COMPONENT : 2 * _SIG_COMPONENT]
    if any(r[_P384:]) or any(s[_P384:]) or any(block[2 * _SIG_COMPONENT :]):
        raise BadSignature("SNP signature block has non-zero bytes outside R and S")
    if key.algorithm is not Algorithm.ES384:
        raise BadSignature(f"SNP reports are signed with ES384, not {key.algorithm.label}")
    key.verify(r[:_P384][::-1] + s[:_P384][::-1], report[:SNP_SIGNED_SIZE])


def _leaf_key(cert: x509.Certificate) -> PublicKey:
    try:
        return PublicKey(cert.public_key(), Algorithm.ES384)  # type: ignore[arg-type]
    except UnsupportedAlgorithm as exc:
        raise ChainNotTrusted(f"{_common_name(cert)} key is not ECDSA P-384") from exc


def verify_snp_chain(
    leaf: x509.Certificate,
    supplied: Sequence[x509.Certificate] = (),
    *,
    now: datetime,
    anchors: Sequence[SnpTrustAnchor] | None = None,
    cache: SnpChainCache | None = None,
) -> SnpProduct:
    """Chain ``leaf`` (a VCEK or VLEK) to a trusted ARK at ``now``; return the product.

    ``anchors`` defaults to the built-in AMD roots; an empty sequence trusts nothing.
    ``supplied`` may carry the ASK/ASVK and ARK (as in KDS ``cert_chain`` files): a supplied
    self-signed certificate must be a trusted ARK. Raises ``ChainNotTrusted`` or
    ``CertificateExpired``.
    """
    return _snp_chain(leaf, supplied, now=now, anchors=anchors, cache=cache)[0].product


def _snp_chain(
    leaf: x509.Certificate,
    supplied: Sequence[x509.Certificate],
    *,
    now: datetime,
    anchors: Sequence[SnpTrustAnchor] | None,
    cache: SnpChainCache | None,
) -> tuple[SnpTrustAnchor, x509.Certificate]:
    """The anchor ``leaf`` chains to and the intermediate (ASK/ASVK) that issued it."""
    trusted = builtin_snp_anchors() if anchors is None else tuple(anchors)
    roots = [c for c in supplied if c.subject == c.issuer]
    ark_prints = {fingerprint(a.ark) for a in trusted} if roots else set()
    for cert in roots:
        if fingerprint(cert) not in ark_prints:
            raise ChainNotTrusted(f"supplied root {_common_name(cert)!r} is not a built-in AMD ARK")
    kind = _leaf_kind(leaf)
    if kind is None:
        raise ChainNotTrusted(f"{_common_name(leaf)!r} is not a VCEK or VLEK certificate")
    leaf_print = fingerprint(leaf)
    failure: ChainNotTrusted | None = None
    for anchor in trusted:
        builtin = anchor.ask if kind is SnpSigningKey.VCEK else anchor.asvk
        if builtin.subject != leaf.issuer:
            continue
        extra = (
            [
                c
                for c in supplied
                if c.subject == builtin.subject and fingerprint(c) != fingerprint(builtin)
            ]
            if supplied
            else []
        )
        for inter in (builtin, *extra):
            key = (leaf_print, fingerprint(inter), fingerprint(anchor.ark))
            if cache is None or cache.get(key) is None:
                try:
                    if inter is not builtin:
                        verify_issued_by(inter, anchor.ark, profile=_SNP_EXTENSIONS)
                    verify_issued_by(leaf, inter, profile=_SNP_EXTENSIONS)
                except ChainNotTrusted as exc:
                    # The last candidate's: a supplied ASK/ASVK that the ARK signed and that
                    # signed the leaf fails on its own defect, not on the built-in one's key.
                    failure = exc
                    continue
                if cache is not None:
                    cache.put(key, anchor.product)
            check_validity((leaf, inter, anchor.ark), now)
            return anchor, inter
    if failure is not None:
        raise failure
    raise ChainNotTrusted(
        f"{_common_name(leaf)} issuer {leaf.issuer.rfc4514_string()!r} is not a trusted "
        "AMD ASK/ASVK"
    )


def _extension(cert: x509.Certificate, oid: x509.ObjectIdentifier) -> bytes | None:
    try:
        ext = cert.extensions.get_extension_for_oid(oid)
    except x509.ExtensionNotFound:
        return None
    except ValueError as exc:
        raise EndorsementMismatch(f"certificate extensions do not parse: {exc}") from exc
    value = ext.value
    if not isinstance(value, x509.UnrecognizedExtension):
        raise EndorsementMismatch(f"unexpected extension type at {oid.dotted_string}")
    return value.value


def _der_content(raw: bytes, tag: int, what: str) -> bytes:
    """The content of one DER TLV with ``tag`` filling ``raw`` exactly (definite, minimal length).

    Written here rather than through pyasn1: these extensions are one tiny primitive each, and
    the generic decoder costs more than the report signature check on the hot path.
    """
    if len(raw) < 2 or raw[0] != tag:
        raise EndorsementMismatch(f"{what} extension is not the expected DER type")
    length, start = raw[1], 2
    if length == 0x81:
        if len(raw) < 3 or raw[2] < 0x80:
            raise EndorsementMismatch(f"{what} extension has a non-minimal DER length")
        length, start = raw[2], 3
    elif length > 0x80:
        raise EndorsementMismatch(f"{what} extension is too long")
    if length == 0x80 or start + length != len(raw):
        raise EndorsementMismatch(f"{what} extension length does not match its content")
    return raw[start:]


def _der_int(raw: bytes, what: str) -> int:
    body = _der_content(raw, 0x02, what)
    if not body or body[0] & 0x80:
        raise EndorsementMismatch(f"{what} extension is not a non-negative DER INTEGER")
    if len(body) > 1 and body[0] == 0 and not body[1] & 0x80:
        raise EndorsementMismatch(f"{what} extension INTEGER is not minimally encoded")
    return int.from_bytes(body, "big")


def _der_ia5(raw: bytes, what: str) -> str:
    body = _der_content(raw, 0x16, what)
    if any(b > 0x7F for b in body):
        raise EndorsementMismatch(f"{what} extension is not an IA5String")
    return body.decode("ascii")


def _product_name(cert: x509.Certificate) -> str | None:
    raw = _extension(cert, _OID_PRODUCT)
    return None if raw is None else _der_ia5(raw, "productName")


def check_snp_endorsement(report: SnpReport, cert: x509.Certificate, product: SnpProduct) -> None:
    """Check that ``cert`` (the VCEK/VLEK that signed ``report``) endorses exactly this report.

    Compares the signing-key kind, the product, REPORTED_TCB (in ``product``'s layout) against
    the TCB extensions, and (for a VCEK) CHIP_ID against hwID. Raises ``EndorsementMismatch``.
    """
    compare_snp_endorsement(report, cert, product)


def _field(name: str, reported: Any, endorsed: Any) -> dict[str, Any]:
    return {"field": name, "report": reported, "certificate": endorsed, "equal": True}


def compare_snp_endorsement(
    report: SnpReport, cert: x509.Certificate, product: SnpProduct
) -> list[dict[str, Any]]:
    """:func:`check_snp_endorsement`, returning every compared field with both values
    (``{"field", "report", "certificate", "equal"}``, JSON-ready)."""
    kind = _leaf_kind(cert)
    if kind is None:
        raise EndorsementMismatch(f"{_common_name(cert)!r} is not a VCEK or VLEK")
    named = report.signing_key
    label = named.name if isinstance(named, SnpSigningKey) else f"unknown ({named})"
    if named is not kind:
        raise EndorsementMismatch(f"report names signing key {label}, signed by a {kind.name}")
    compared = [_field("signing_key", label, kind.name)]
    name = _product_name(cert)
    if name is None or name.split("-", 1)[0] != product.value:
        raise EndorsementMismatch(
            f"{kind.name} product {name!r} is not the chain's product {product.value}"
        )
    hint = report.product_hint
    if hint is not None and hint is not product:
        raise EndorsementMismatch(
            f"report CPUID names {hint.value}, the certificate chain is {product.value}"
        )
    compared.append(_field("product", product.value if hint is None else hint.value, name))
    tcb = TcbVersion.decode(report.reported_tcb.raw, turin=product.turin_tcb)
    raw_tcb = tcb.raw.to_bytes(8, "little")
    if any(raw_tcb[i] for i in _TCB_RESERVED[product.turin_tcb]):
        raise EndorsementMismatch(
            f"report reported_tcb {tcb.raw:016x} has reserved bytes set ({product.value} "
            f"layout): the {kind.name} does not endorse them"
        )
    for component, value in tcb.components().items():
        raw = _extension(cert, _TCB_OIDS[component])
        if raw is None:
            raise EndorsementMismatch(f"{kind.name} has no {component} SVN extension")
        endorsed = _der_int(raw, component)
        if endorsed != value:
            raise EndorsementMismatch(
                f"{kind.name} {component} SVN {endorsed} != report reported_tcb {value}"
            )
        compared.append(_field(f"reported_tcb.{component}", value, endorsed))
    if kind is SnpSigningKey.VCEK:
        hwid = _extension(cert, _OID_HWID)
        if hwid is None:
            raise EndorsementMismatch("VCEK has no hwID extension")
        if report.chip_id_masked:
            compared.append(
                {
                    "field": "chip_id",
                    "report": "",
                    "certificate": hwid.hex(),
                    "equal": None,
                    "note": "CHIP_ID masked by the platform: not compared",
                }
            )
            return compared
        if product.turin_tcb:
            expected = hwid + bytes(len(report.chip_id) - len(hwid))
            ok = len(hwid) == _TURIN_HWID and report.chip_id == expected
        else:
            ok = report.chip_id == hwid
        if not ok:
            raise EndorsementMismatch("VCEK hwID does not equal the report's CHIP_ID")
        compared.append(_field("chip_id", report.chip_id.hex(), hwid.hex()))
    return compared


def _endorsement_detail(compared: Sequence[dict[str, Any]]) -> str:
    parts = []
    for item in compared:
        name = str(item["field"]).removeprefix("reported_tcb.")
        if item["field"] == "chip_id":
            parts.append(
                "hwID = CHIP_ID" if item["equal"] else "CHIP_ID masked (hwID not compared)"
            )
        else:
            parts.append(f"{name} {item['report']} = {item['certificate']}")
    return "report = certificate: " + ", ".join(parts)


def snp_claims(
    report: SnpReport,
    cert: x509.Certificate,
    product: SnpProduct,
    *,
    fmt: str = "snp",
    root: str = "",
    endorsement: Sequence[dict[str, Any]] = (),
    stale: Sequence[StaleCollateral] = (),
    valid_until: datetime | None = None,
) -> EvidenceClaims:
    """The claims of a verified report (``report`` decoded in ``product``'s TCB layout;
    ``root``: the SHA-256 of the ARK the chain reached, hex; ``endorsement``: the fields the
    endorsement check compared; ``stale``: the stale CRLs that were allowed; ``valid_until``:
    when the chain or the fresh CRLs stop holding)."""
    report = report.with_tcb_layout(product)
    kind = _leaf_kind(cert)
    identity = {
        "product": product.value,
        "signing_key": kind.name.lower() if kind is not None else "",
        "chip_id": "" if report.chip_id_masked else report.chip_id.hex(),
        "report_id": report.report_id.hex(),
        "root": root,
    }
    csp = _extension(cert, _OID_CSP_ID)
    if csp is not None:
        identity["csp_id"] = _der_ia5(csp, "CSP id")
    svns = {"guest_svn": report.guest_svn, **report.reported_tcb.components()}
    raw = report.to_dict()
    raw["product"] = product.value
    raw["endorsement"] = [dict(item) for item in endorsement]
    raw["stale_collateral"] = [item.to_dict() for item in stale]
    return EvidenceClaims(
        format=fmt,
        measurements={
            "measurement": report.measurement,
            "host_data": report.host_data,
            "id_key_digest": report.id_key_digest,
            "author_key_digest": report.author_key_digest,
            "family_id": report.family_id,
            "image_id": report.image_id,
        },
        report_data=report.report_data,
        debug=report.policy.debug,
        svns=svns,
        identity=identity,
        signer=subject_text(cert),
        raw=raw,
        valid_until=valid_until,
    )


@dataclass(frozen=True, slots=True)
class _Verified:
    report: SnpReport
    signer: x509.Certificate
    anchor: SnpTrustAnchor
    intermediate: x509.Certificate
    endorsement: list[dict[str, Any]]
    stale: tuple[StaleCollateral, ...]
    valid_until: datetime | None = None

    def claims(self, fmt: str = "snp") -> EvidenceClaims:
        return snp_claims(
            self.report,
            self.signer,
            self.anchor.product,
            fmt=fmt,
            root=fingerprint(self.anchor.ark).hex(),
            endorsement=self.endorsement,
            stale=self.stale,
            valid_until=self.valid_until,
        )


def _verify_report(
    data: bytes,
    certificates: Sequence[CertificateInput],
    now: datetime,
    anchors: Sequence[SnpTrustAnchor] | None,
    cache: SnpChainCache | None,
    log: CheckLog,
    crls: Sequence[x509.CertificateRevocationList] = (),
    allow_stale: bool = False,
) -> _Verified:
    with log.step("structure", f"{SNP_REPORT_SIZE} bytes"):
        if len(data) != SNP_REPORT_SIZE:
            raise MalformedEvidence(
                f"an SNP report is {SNP_REPORT_SIZE} bytes, this one is {len(data)}"
            )
    with log.step("signature", "ECDSA P-384 by the VCEK/VLEK over bytes 0x000-0x29F"):
        certs = [c for item in certificates for c in load_certificates(item)]
        leaves = [c for c in certs if _leaf_kind(c) is not None]
        if not leaves:
            raise ChainNotTrusted("no VCEK or VLEK certificate was supplied for the SNP report")
        signer: x509.Certificate | None = None
        for leaf in leaves:
            try:
                verify_snp_signature(data, _leaf_key(leaf))
            except BadSignature:
                continue
            signer = leaf
            break
        if signer is None:
            raise BadSignature(
                "the SNP report signature does not verify with the supplied VCEK/VLEK"
            )
    with log.step("fields"):
        report = parse_snp_report(data)
    with log.step("chain", "VCEK → ASK (or VLEK → ASVK) → built-in ARK, valid at the time"):
        others = [c for c in certs if c is not signer and _leaf_kind(c) is None]
        anchor, inter = _snp_chain(signer, others, now=now, anchors=anchors, cache=cache)
    with log.step("endorsement") as step:
        compared = compare_snp_endorsement(report, signer, anchor.product)
        step.detail = _endorsement_detail(compared)
    stale: tuple[StaleCollateral, ...] = ()
    crls_until: datetime | None = None
    chain = (signer, inter, anchor.ark)
    if not crls:
        log.skip("revocation", "no CRL given")
    elif not chain_has_crl(chain, crls):
        log.skip("revocation", f"none of the {len(crls)} CRL(s) given is of this chain's CAs")
    else:
        with log.step("revocation") as step:
            result = check_chain_revocation(chain, crls, now=now, allow_stale=allow_stale)
            assert result is not None
            step.detail = result.detail
            stale = result.stale
            crls_until = result.valid_until
    until = earliest(chain, crls_until)
    return _Verified(report, signer, anchor, inter, compared, stale, until)


def verify_snp_report(
    data: bytes,
    certificates: Sequence[CertificateInput],
    *,
    now: datetime,
    anchors: Sequence[SnpTrustAnchor] | None = None,
    cache: SnpChainCache | None = None,
    checks: CheckLog | None = None,
    crls: Sequence[x509.CertificateRevocationList] = (),
    allow_stale_collateral: bool = False,
) -> EvidenceClaims:
    """Verify a raw SNP report against its VCEK/VLEK (DER, PEM or parsed; ASK/ARK optional).

    Returns the claims or raises (see the module documentation for the order and the errors);
    ``checks`` records the steps by name. ``crls`` (AMD KDS CRLs) are checked against the
    chain; a stale one is refused unless ``allow_stale_collateral``.
    """
    log = CheckLog() if checks is None else checks
    v = _verify_report(
        bytes(data), certificates, now, anchors, cache, log, crls, allow_stale_collateral
    )
    return v.claims()


# --- Azure HCL wrapper --------------------------------------------------------------------

_HCL_MAGIC: Final = b"HCLA"
_HCL_HEADER: Final = struct.Struct("<4sIII16s")
_RUNTIME_HEADER: Final = struct.Struct("<IIIII")
_HCL_REPORT_TYPE_SNP: Final = 2
_HCL_HASHES: Final = {1: "sha256", 2: "sha384", 3: "sha512"}
_HCL_MAX: Final = 64 * 1024


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number {text[:16]} is out of range")
    return value


def _no_constant(name: str) -> Any:
    raise ValueError(f"JSON constant {name} is not allowed")


def _strict_json(data: bytes) -> Any:
    """``data`` as JSON that can be written out again as JSON: no ``NaN``/``Infinity``, no
    number beyond a float's range, no lone surrogate (``ValueError``; ``RecursionError``
    when nested too deeply)."""
    value = json.loads(data, parse_float=_finite, parse_constant=_no_constant)
    json.dumps(value, ensure_ascii=False).encode("utf-8")  # a lone surrogate fails here
    return value


@dataclass(frozen=True, slots=True)
class AzureHclReport:
    """An Azure CVM HCL report: the SNP report and the runtime claims it binds."""

    version: int
    request_type: int
    report_size: int
    snp_report: bytes
    runtime_data_version: int
    runtime_report_type: int
    hash_type: int
    runtime_claims: bytes

    def claims_digest(self) -> bytes:
        return hashlib.new(_HCL_HASHES[self.hash_type], self.runtime_claims).digest()

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready; runtime claims that are not strict JSON (too deep, ``NaN``, an
        out-of-range number, a lone surrogate) are shown as hex."""
        try:
            claims: Any = _strict_json(self.runtime_claims)
        except (ValueError, RecursionError):
            claims = self.runtime_claims.hex()
        return {
            "version": self.version,
            "request_type": self.request_type,
            "report_size": self.report_size,
            "runtime_data_version": self.runtime_data_version,
            "runtime_report_type": self.runtime_report_type,
            "hash_type": _HCL_HASHES[self.hash_type],
            "runtime_claims": claims,
        }


def parse_azure_hcl_report(data: bytes) -> AzureHclReport:
    """Parse an HCL report; trailing zero padding (the NV index is fixed-size) is allowed."""
    data = bytes(data)
    if len(data) > _HCL_MAX:
        raise MalformedEvidence(f"HCL report over {_HCL_MAX} bytes")
    head = _HCL_HEADER.size
    runtime_at = head + SNP_REPORT_SIZE
    if len(data) < runtime_at + _RUNTIME_HEADER.size:
        raise MalformedEvidence("HCL report is truncated")
    magic, version, size, request_type, _reserved = _HCL_HEADER.unpack_from(data, 0)
    if magic != _HCL_MAGIC:
        raise MalformedEvidence("not an HCL report (no HCLA signature)")
    if size < runtime_at + _RUNTIME_HEADER.size or size > len(data):
        raise MalformedEvidence(f"HCL report size {size} does not fit the data")
    if any(data[size:]):
        raise MalformedEvidence("HCL report has non-zero bytes after its declared size")
    data_size, rt_version, rt_type, hash_type, claims_size = _RUNTIME_HEADER.unpack_from(
        data, runtime_at
    )
    claims_at = runtime_at + _RUNTIME_HEADER.size
    if data_size != _RUNTIME_HEADER.size + claims_size or claims_at + claims_size != size:
        raise MalformedEvidence("HCL runtime data sizes are inconsistent")
    if rt_type != _HCL_REPORT_TYPE_SNP:
        raise MalformedEvidence(f"HCL report type {rt_type} is not SNP")
    if hash_type not in _HCL_HASHES:
        raise MalformedEvidence(f"unknown HCL runtime-claims hash type {hash_type}")
    return AzureHclReport(
        version=version,
        request_type=request_type,
        report_size=size,
        snp_report=data[head:runtime_at],
        runtime_data_version=rt_version,
        runtime_report_type=rt_type,
        hash_type=hash_type,
        runtime_claims=data[claims_at : claims_at + claims_size],
    )


def verify_azure_hcl_report(
    data: bytes,
    certificates: Sequence[CertificateInput],
    *,
    now: datetime,
    anchors: Sequence[SnpTrustAnchor] | None = None,
    cache: SnpChainCache | None = None,
    checks: CheckLog | None = None,
    crls: Sequence[x509.CertificateRevocationList] = (),
    allow_stale_collateral: bool = False,
) -> EvidenceClaims:
    """Verify the SNP report inside an HCL report and its binding of the runtime claims.

    A REPORT_DATA that does not start with the claims' hash (the rest zero) raises
    ``BadSignature``: the claims are not the ones the hardware signed. The claims'
    ``report_data`` is the runtime claims' ``user-data`` (the bytes the guest bound; empty
    when absent); the hardware REPORT_DATA stays in ``raw``.
    """
    log = CheckLog() if checks is None else checks
    with log.step("hcl-structure"):
        hcl = parse_azure_hcl_report(data)
    v = _verify_report(
        hcl.snp_report, certificates, now, anchors, cache, log, crls, allow_stale_collateral
    )
    report = v.report
    with log.step("runtime-claims", "REPORT_DATA = hash of the runtime claims"):
        digest = hcl.claims_digest()
        expected = digest + bytes(len(report.report_data) - len(digest))
        if report.report_data != expected:
            raise BadSignature("HCL runtime claims are not bound into the SNP REPORT_DATA")
        user_data = _user_data(hcl.runtime_claims)
    claims = v.claims("azure-hcl")
    raw = dict(claims.raw)
    raw["azure_hcl"] = hcl.to_dict()
    measurements = dict(claims.measurements)
    measurements["runtime_claims"] = digest
    return EvidenceClaims(
        format=claims.format,
        measurements=measurements,
        report_data=user_data,
        debug=claims.debug,
        svns=claims.svns,
        identity=claims.identity,
        signer=claims.signer,
        raw=raw,
        valid_until=claims.valid_until,
    )


_MAX_USER_DATA: Final = 64


def _user_data(runtime_claims: bytes) -> bytes:
    """The ``user-data`` member of the runtime claims JSON (hex text), as bytes.

    Read strictly (:data:`ironroot._json.DECODER`): a member named twice is refused
    (``MalformedEvidence``), since which ``user-data`` counts would depend on the reader (this
    one took the last, others take the first)."""
    try:
        document = STRICT_JSON.decode(runtime_claims.decode("utf-8"))
    except (ValueError, RecursionError) as exc:
        raise MalformedEvidence(f"HCL runtime claims are not JSON: {exc}") from exc
    if not isinstance(document, dict):
        raise MalformedEvidence("HCL runtime claims are not a JSON object")
    value = document.get("user-data")
    if value is None:
        return b""
    if not isinstance(value, str) or len(value) > 2 * _MAX_USER_DATA:
        raise MalformedEvidence("HCL user-data is not hex text of at most 64 bytes")
    try:
        return bytes.fromhex(value)
    except ValueError as exc:
        raise MalformedEvidence("HCL user-data is not hex text") from exc
