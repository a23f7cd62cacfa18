"""Verify an Intel TDX quote: quote signature, QE report, key binding and the PCK chain.

The steps, in order (each failure is one typed error):

1. Structure (``MalformedEvidence``): version 4 or 5, lengths consistent, certification data
   type 6 holding a type-5 PCK chain; trailing bytes only when allowed.
2. Quote signature (``BadSignature``): ECDSA P-256/SHA-256 by the attestation key (raw x‖y)
   over header [‖ v5 body descriptor] ‖ body, checked by :meth:`ironroot.crypto.PublicKey.verify`.
3. Header values (``MalformedEvidence``): attestation key type 2, TEE type 0x81, Intel's QE
   vendor id (as Intel's QVL requires).
4. QE report signature (``BadSignature``): ECDSA P-256 by the PCK leaf over the 384-byte QE
   report.
5. Key binding (``BadSignature``): QE REPORTDATA[0:32] = SHA-256(attestation key ‖ QE auth
   data) and REPORTDATA[32:64] all zero; otherwise the attestation key is not the QE's.
6. Chain (``ChainNotTrusted``, ``CertificateExpired``): PCK → Intel SGX PCK Platform/Processor
   CA → Intel SGX Root CA, ECDSA signatures checked by ``cryptography``; the root is the
   built-in, pinned one (a different self-signed certificate in the quote is refused); every
   certificate valid at ``now``.
6a. QE signer (``EndorsementMismatch``, check ``qe-signer``), when no QE Identity is given:
   the QE report's MRSIGNER, ISVPRODID (2), MISCSELECT and ATTRIBUTES (DEBUG clear) must be
   those of Intel's TD QE. The PCK signs the report of any enclave the platform lets hold
   PROVISION_KEY (the host decides which, under flexible launch control), so without this a
   host's own enclave could sign any TD report; a QE Identity, when given, decides instead.
6b. TDX module (``EndorsementMismatch``, check ``tdx-module``), when no TCB Info is given:
   MRSIGNERSEAM and SEAMATTRIBUTES zero (an Intel TDX module in production mode), as every
   module identity of Intel's TCB Info requires; a TCB Info, when given, decides instead.
7. Revocation (``CertificateRevoked``, ``CollateralExpired``), when CRLs are given (DER or PEM:
   the PCS PCK CRL and root CA CRL, see :mod:`._revocation`): each certificate against the CRL
   of its issuer; a CRL past its ``nextUpdate`` is refused unless stale collateral is allowed.
   With Intel collateral (a TCB Info or QE Identity in ``collateral``) both CRLs are required,
   as Intel's QVL requires them (``MalformedCollateral`` code ``crl-missing``): the PCK covered
   by a CRL of its issuer (the PCK Platform or Processor CA) and that CA by a root CA CRL. No
   knob relaxes this.
8. Collateral (``BadSignature``, ``ChainNotTrusted``, ``CollateralExpired``), when Intel's TCB
   Info / QE Identity are given (:mod:`._tdx_collateral`): their signatures by the Intel SGX
   TCB Signing certificate, its chain to the same root, their freshness.
9. QE identity (``EndorsementMismatch``; ``CertificateRevoked`` for a revoked QE TCB): the QE
   report against the TD QE Identity, giving the QE TCB status.
10. TCB status (``EndorsementMismatch``; ``CertificateRevoked`` for a Revoked TCB): the TCB
    Info of the PCK's FMSPC, Intel's TCB level matching, giving the TCB status and advisories
    (``identity["tcb_status"]``, ``raw["tcb"]``).

Without collateral, steps 7–10 are recorded as not checked, with why (steps 6a and 6b still run).

The PCK certificate's SGX extension (OID 1.2.840.113741.1.13.1) gives the platform identity
(FMSPC, PCE-ID) and the PCK's TCB components, which go into the claims, as do the QE's
MRSIGNER, ISVPRODID and ISVSVN.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from cryptography import x509
from pyasn1.codec.der import decoder as der_decoder
from pyasn1.error import PyAsn1Error

from ironroot.attestation.evidence._certs import (
    check_validity,
    earliest,
    fingerprint,
    load_certificates,
    subject_text,
    verify_issued_by,
)
from ironroot.attestation.evidence._claims import CheckLog, EvidenceClaims
from ironroot.attestation.evidence._revocation import (
    RevocationResult,
    StaleCollateral,
    chain_has_crl,
    check_chain_revocation,
    common_name,
)
from ironroot.attestation.evidence._roots import builtin_intel_root
from ironroot.attestation.evidence._tdx import TdxQuote, _check_header, _parse
from ironroot.attestation.evidence._tdx_collateral import (
    REVOKED,
    QeTcb,
    TdxCollateral,
    TdxTcbStatus,
    check_intel_td_qe,
    check_intel_tdx_module,
    check_qe_identity,
    collateral_signing_chain,
    evaluate_tdx_tcb,
    parse_qe_identity,
    parse_tcb_info,
    verify_collateral,
)
from ironroot.crypto import Algorithm, ExtensionProfile, PublicKey
from ironroot.crypto import load_crls as crypto_load_crls
from ironroot.errors import (
    BadSignature,
    CertificateRevoked,
    ChainNotTrusted,
    EndorsementMismatch,
    MalformedCertificate,
    MalformedCollateral,
    MalformedInput,
    UnsupportedAlgorithm,
)

__all__ = [
    "PckExtensions",
    "TdxChainCache",
    "load_crls",
    "load_tdx_collateral",
    "parse_pck_extensions",
    "tdx_claims",
    "verify_tdx_quote",
]

_SGX_EXT: Final = "1.2.840.113741.1.13.1"
# What the PCK chain check processes (RFC 5280 §4.2): the standard extensions and the SGX
# extension; any other critical extension on the PCK or its CA is refused.
_PCK_EXTENSIONS: Final = ExtensionProfile.of("Intel PCK", _SGX_EXT)
_OID_SGX: Final = x509.ObjectIdentifier(_SGX_EXT)
_MAX_CRL_BYTES: Final = 1024 * 1024
_P256_COORD: Final = 32


class TdxChainCache:
    """Remembers (PCK, intermediate, root) triples whose signatures verified; bounded."""

    __slots__ = ("_entries", "_max")

    def __init__(self, max_entries: int = 1024) -> None:
        self._entries: set[tuple[bytes, bytes, bytes]] = set()
        self._max = max_entries

    def __contains__(self, key: object) -> bool:
        return key in self._entries

    def add(self, key: tuple[bytes, bytes, bytes]) -> None:
        """Remember a verified triple (also used for collateral signatures: the document
        digest, the TCB signing certificate and the root)."""
        if len(self._entries) >= self._max:
            self._entries.clear()
        self._entries.add(key)

    def __len__(self) -> int:
        return len(self._entries)


@dataclass(frozen=True, slots=True)
class PckExtensions:
    """The SGX extension of a PCK certificate: identity and TCB components."""

    ppid: bytes
    tcb_components: tuple[int, ...]
    pcesvn: int
    cpusvn: bytes
    pceid: bytes
    fmspc: bytes
    sgx_type: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "ppid": self.ppid.hex(),
            "tcb_components": list(self.tcb_components),
            "pcesvn": self.pcesvn,
            "cpusvn": self.cpusvn.hex(),
            "pceid": self.pceid.hex(),
            "fmspc": self.fmspc.hex(),
            "sgx_type": self.sgx_type,
        }


def _pairs(seq: Any) -> dict[str, Any]:
    """The (OID, value) pairs of one SEQUENCE of the SGX extension; an OID named twice is
    refused (the last would silently win: a second FMSPC or PCE-ID picks other collateral)."""
    out: dict[str, Any] = {}
    for item in seq:
        if len(item) != 2:
            raise MalformedCertificate("SGX extension entry is not an (OID, value) pair")
        oid, value = str(item[0]), item[1]
        if oid in out:
            raise MalformedCertificate(f"SGX extension names {oid} twice")
        out[oid] = value
    return out


_SGX_SIZES: Final = {"ppid": 16, "cpusvn": 16, "pceid": 2, "fmspc": 6}


def _sized(value: Any, name: str) -> bytes:
    raw = bytes(value)
    if len(raw) != _SGX_SIZES[name]:
        raise MalformedCertificate(
            f"SGX extension {name} is {len(raw)} bytes, not {_SGX_SIZES[name]}"
        )
    return raw


def parse_pck_extensions(cert: x509.Certificate) -> PckExtensions:
    """Decode the SGX extension (1.2.840.113741.1.13.1) of a PCK certificate.

    Raises ``MalformedCertificate`` if it is absent or does not decode.
    """
    try:
        ext = cert.extensions.get_extension_for_oid(_OID_SGX).value
    except x509.ExtensionNotFound as exc:
        raise MalformedCertificate("PCK certificate has no SGX extension") from exc
    except ValueError as exc:
        raise MalformedCertificate(f"PCK certificate extensions do not parse: {exc}") from exc
    if not isinstance(ext, x509.UnrecognizedExtension):
        raise MalformedCertificate("unexpected SGX extension type")
    return _decode_sgx_extension(ext.value)


@functools.lru_cache(maxsize=256)
def _decode_sgx_extension(value: bytes) -> PckExtensions:
    """The SGX extension's value decoded (remembered: the generic DER decoder costs several
    times a quote's signature checks, and a verifier sees the same few PCKs again and again)."""
    try:
        decoded, rest = der_decoder.decode(value)
        if rest:
            raise MalformedCertificate("SGX extension has trailing bytes")
        top = _pairs(decoded)
        tcb = _pairs(top[f"{_SGX_EXT}.2"])
        components = tuple(int(tcb[f"{_SGX_EXT}.2.{i}"]) for i in range(1, 17))
        return PckExtensions(
            ppid=_sized(top[f"{_SGX_EXT}.1"], "ppid"),
            tcb_components=components,
            pcesvn=int(tcb[f"{_SGX_EXT}.2.17"]),
            cpusvn=_sized(tcb[f"{_SGX_EXT}.2.18"], "cpusvn"),
            pceid=_sized(top[f"{_SGX_EXT}.3"], "pceid"),
            fmspc=_sized(top[f"{_SGX_EXT}.4"], "fmspc"),
            sgx_type=int(top[f"{_SGX_EXT}.5"]),
        )
    # pyasn1 raises AttributeError on an empty SEQUENCE inside a SEQUENCE (30 02 30 00).
    except (
        PyAsn1Error, AttributeError, KeyError, IndexError, TypeError, ValueError, OverflowError
    ) as exc:  # fmt: skip
        raise MalformedCertificate(f"PCK SGX extension does not decode: {exc}") from exc


def load_crls(data: bytes) -> list[x509.CertificateRevocationList]:
    """Every CRL in ``data`` (one DER CRL, or PEM with one or more ``X509 CRL`` blocks), every
    field and entry read once (:func:`ironroot.crypto.load_crls`); raises
    ``MalformedCertificate``."""
    if not isinstance(data, bytes) or not data or len(data) > _MAX_CRL_BYTES:
        raise MalformedCertificate("a CRL must be non-empty DER or PEM bytes under 1 MiB")
    return crypto_load_crls(data)


def load_tdx_collateral(
    *,
    tcb_info: bytes | Sequence[bytes] = (),
    qe_identity: bytes | None = None,
    signing_chain: bytes | None = None,
    crls: Sequence[bytes] = (),
) -> TdxCollateral:
    """Intel collateral from the bytes PCS serves: TCB Info bodies (one or several FMSPCs),
    the QE Identity body, the TCB signing chain (PEM, or the URL-encoded
    ``TCB-Info-Issuer-Chain`` header value) and CRLs (DER or PEM).

    Parses only; :func:`verify_tdx_quote` verifies. Raises ``MalformedCollateral`` or
    ``MalformedCertificate``.
    """
    infos = [tcb_info] if isinstance(tcb_info, bytes | bytearray) else list(tcb_info)
    return TdxCollateral(
        tcb_infos=tuple(parse_tcb_info(bytes(item)) for item in infos),
        qe_identity=None if qe_identity is None else parse_qe_identity(qe_identity),
        signing_chain=() if signing_chain is None else collateral_signing_chain(signing_chain),
        crls=tuple(crl for item in crls for crl in load_crls(item)),
    )


def _p256_key(raw: bytes) -> PublicKey:
    try:
        return PublicKey.from_cose_key({1: 2, -1: 1, -2: raw[:_P256_COORD], -3: raw[_P256_COORD:]})
    except MalformedInput as exc:
        raise BadSignature("the TDX attestation key is not a P-256 point") from exc


def _chain(
    certs: Sequence[x509.Certificate],
    now: datetime,
    root: x509.Certificate,
    cache: TdxChainCache | None,
) -> tuple[x509.Certificate, x509.Certificate]:
    if not certs:
        raise ChainNotTrusted("the TDX quote carries no PCK certificate")
    leaf = certs[0]
    root_print = fingerprint(root)
    for cert in certs[1:]:
        if cert.subject == cert.issuer and fingerprint(cert) != root_print:
            raise ChainNotTrusted(
                f"root {cert.subject.rfc4514_string()!r} in the quote is not the Intel SGX Root CA"
            )
    inters = [c for c in certs[1:] if c.subject == leaf.issuer and c.subject != c.issuer]
    if len(inters) != 1:
        raise ChainNotTrusted("the PCK chain does not hold exactly one issuer of the PCK")
    inter = inters[0]
    key = (fingerprint(leaf), fingerprint(inter), root_print)
    if cache is None or key not in cache:
        verify_issued_by(leaf, inter, profile=_PCK_EXTENSIONS)
        verify_issued_by(inter, root, profile=_PCK_EXTENSIONS)
        if cache is not None:
            cache.add(key)
    check_validity((leaf, inter, root), now)
    return leaf, inter


def tdx_claims(
    quote: TdxQuote,
    pck: x509.Certificate,
    *,
    root: str = "",
    tcb: TdxTcbStatus | None = None,
    qe: QeTcb | None = None,
    stale: Sequence[StaleCollateral] = (),
    ext: PckExtensions | None = None,
    valid_until: datetime | None = None,
) -> EvidenceClaims:
    """The claims of a verified quote whose QE report ``pck`` signed (``root``: the SHA-256
    of the root certificate the chain reached, hex; ``tcb``/``qe``: the TCB and QE TCB status
    when collateral was given; ``stale``: the stale collateral that was allowed;
    ``valid_until``: when the chain or the fresh collateral stop holding)."""
    body = quote.body
    ext = parse_pck_extensions(pck) if ext is None else ext
    measurements = {
        "mrtd": body.mrtd,
        "rtmr0": body.rtmrs[0],
        "rtmr1": body.rtmrs[1],
        "rtmr2": body.rtmrs[2],
        "rtmr3": body.rtmrs[3],
        "mrseam": body.mrseam,
        "mrsignerseam": body.mrsignerseam,
        "mrconfigid": body.mrconfigid,
        "mrowner": body.mrowner,
        "mrownerconfig": body.mrownerconfig,
        "qe_mrenclave": quote.qe_report.mr_enclave,
        "qe_mrsigner": quote.qe_report.mr_signer,
    }
    if body.mrservicetd is not None:
        measurements["mrservicetd"] = body.mrservicetd
    svns = {f"tee_tcb_svn_{i}": b for i, b in enumerate(body.tee_tcb_svn)}
    if body.tee_tcb_svn2 is not None:
        svns.update({f"tee_tcb_svn2_{i}": b for i, b in enumerate(body.tee_tcb_svn2)})
    svns["qe_isvsvn"] = quote.qe_report.isv_svn
    svns["pck_pcesvn"] = ext.pcesvn
    svns.update({f"pck_tcb_comp_{i + 1:02d}": v for i, v in enumerate(ext.tcb_components)})
    raw = quote.to_dict()
    raw["pck"] = ext.to_dict()
    identity = {
        "fmspc": ext.fmspc.hex(),
        "pceid": ext.pceid.hex(),
        "ppid": ext.ppid.hex(),
        "qe_vendor_id": quote.header.qe_vendor_id.hex(),
        "qe_isvprodid": str(quote.qe_report.isv_prod_id),
        "root": root,
    }
    if tcb is not None:
        identity["tcb_status"] = tcb.status
        raw["tcb"] = tcb.to_dict()
    if qe is not None:
        identity["qe_tcb_status"] = qe.status
        raw["qe_tcb"] = qe.to_dict()
    names: dict[str, StaleCollateral] = {item.name: item for item in stale}
    raw["stale_collateral"] = [item.to_dict() for item in names.values()]
    return EvidenceClaims(
        format="tdx",
        measurements=measurements,
        report_data=body.report_data,
        debug=body.td_attributes.under_debug,
        svns=svns,
        identity=identity,
        signer=subject_text(pck),
        raw=raw,
        valid_until=valid_until,
    )


def verify_tdx_quote(
    data: bytes,
    *,
    now: datetime,
    root: x509.Certificate | None = None,
    crls: Sequence[x509.CertificateRevocationList] = (),
    cache: TdxChainCache | None = None,
    checks: CheckLog | None = None,
    collateral: TdxCollateral | None = None,
    allow_stale_collateral: bool = False,
) -> EvidenceClaims:
    """Verify a TDX quote (v4, or v5 with a TDX 1.0/1.5 body) at ``now``; return its claims.

    ``root`` defaults to the built-in Intel SGX Root CA; it anchors the PCK chain and the
    collateral's TCB signing chain alike. ``crls`` and ``collateral.crls`` are checked
    against the PCK chain; ``collateral`` (Intel TCB Info and QE Identity) gives the TCB
    status. Stale collateral is refused unless ``allow_stale_collateral`` (it is then listed
    in ``raw["stale_collateral"]``). Bytes after the quote are counted
    (``raw["trailing_bytes"]``) and ignored. See the module documentation for the steps and
    their errors; ``checks`` records them by name.
    """
    log = CheckLog() if checks is None else checks
    with log.step("structure"):
        quote = _parse(data)
    with log.step("quote-signature", "attestation key over header and TD report"):
        _p256_key(quote.attestation_key).verify(quote.signature, quote.signed_bytes)
    with log.step("header"):
        _check_header(quote.header)
    with log.step("qe-report-signature", "PCK key over the QE report"):
        certs = load_certificates(quote.pck_chain_pem.rstrip(b"\x00"))
        pck = certs[0]
        try:
            pck_key = PublicKey(pck.public_key(), Algorithm.ES256)  # type: ignore[arg-type]
        except UnsupportedAlgorithm as exc:
            raise ChainNotTrusted("the PCK key is not ECDSA P-256") from exc
        pck_key.verify(quote.qe_report_signature, quote.qe_report.raw)
    with log.step("key-binding", "QE report data = SHA-256(attestation key ‖ QE auth data)"):
        expected = hashlib.sha256(quote.attestation_key + quote.qe_auth_data).digest()
        report_data = quote.qe_report.report_data
        if report_data[:32] != expected or any(report_data[32:]):
            raise BadSignature("QE report data does not bind the attestation key and auth data")
    anchor = builtin_intel_root() if root is None else root
    with log.step("chain", "PCK → Intel SGX PCK CA → Intel SGX Root CA, valid at the time"):
        leaf, inter = _chain(certs, now, anchor, cache)
    if collateral is None or collateral.qe_identity is None:
        with log.step("qe-signer") as step:
            step.detail = check_intel_td_qe(quote.qe_report)
    if collateral is None or not collateral.tcb_infos:
        with log.step("tdx-module") as step:
            step.detail = check_intel_tdx_module(quote.body)
    stale: list[StaleCollateral] = []
    until: list[datetime | None] = []
    given = (*crls, *(collateral.crls if collateral is not None else ()))
    all_crls = list({id(crl): crl for crl in given}.values())  # the same CRL given twice
    chain = (leaf, inter, anchor)
    # Intel collateral (TCB Info, QE Identity) needs the CRLs of the chain; CRLs alone (a
    # verifier's configured CRLs of any vendor land in a CRL-only collateral) stay optional
    required = collateral is not None and (
        bool(collateral.tcb_infos) or collateral.qe_identity is not None
    )
    if not all_crls and not required:
        log.skip("revocation", "no CRL given")
    elif not required and not chain_has_crl(chain, all_crls):
        log.skip("revocation", f"none of the {len(all_crls)} CRL(s) given is of this chain's CAs")
    else:
        with log.step("revocation") as step:
            result = check_chain_revocation(
                chain, all_crls, now=now, allow_stale=allow_stale_collateral
            )
            if required:
                _require_chain_crls(chain, result)
            assert result is not None
            step.detail = result.detail
            stale.extend(result.stale)
            until.append(result.valid_until)
    tcb, qe = _appraise_collateral(
        quote, leaf, anchor, collateral, now, allow_stale_collateral, cache, log, stale, all_crls,
        until,
    )  # fmt: skip
    return tdx_claims(
        quote,
        pck,
        root=fingerprint(anchor).hex(),
        tcb=tcb,
        qe=qe,
        stale=stale,
        valid_until=earliest(chain, *until),
    )


def _require_chain_crls(
    chain: tuple[x509.Certificate, x509.Certificate, x509.Certificate],
    result: RevocationResult | None,
) -> None:
    """Step 7 with Intel collateral: ``MalformedCollateral`` ``crl-missing`` unless a CRL of
    the PCK's issuer covered the PCK and a root CA CRL covered that issuer (Intel's QVL takes
    both as part of the collateral; without them "not revoked" would rest on nothing)."""
    covered: frozenset[int] = frozenset() if result is None else result.covered
    ca = chain[1]
    ca_name = common_name(ca.subject)
    if 0 not in covered:
        kind = ca_name.removeprefix("Intel SGX PCK ").removesuffix(" CA").lower()
        where = f" (PCS pckcrl?ca={kind})" if kind in ("platform", "processor") else ""
        raise MalformedCollateral(
            f"no CRL of {ca_name!r} covers the PCK certificate: Intel collateral needs the "
            f"PCK CRL of the PCK's issuer{where}",
            code="crl-missing",
        )
    if 1 not in covered:
        raise MalformedCollateral(
            f"no CRL of {common_name(ca.issuer)!r} covers {ca_name!r}: Intel collateral needs "
            "the Intel SGX Root CA CRL",
            code="crl-missing",
        )


def _appraise_collateral(
    quote: TdxQuote,
    pck: x509.Certificate,
    root: x509.Certificate,
    collateral: TdxCollateral | None,
    now: datetime,
    allow_stale: bool,
    cache: TdxChainCache | None,
    log: CheckLog,
    stale: list[StaleCollateral],
    crls: Sequence[x509.CertificateRevocationList],
    until: list[datetime | None],
) -> tuple[TdxTcbStatus | None, QeTcb | None]:
    """Steps 8–10: the collateral's signatures and freshness (the TCB signing certificate
    against every CRL given: ``crls`` holds those of the call and of ``collateral``), the QE
    identity, the TCB status; when what was relied on stops holding is added to ``until``."""
    if collateral is None or (not collateral.tcb_infos and collateral.qe_identity is None):
        for name in ("collateral", "qe-identity", "tcb-status"):
            log.skip(name, "no collateral given (TCB Info, QE Identity)")
        return None, None
    ext = parse_pck_extensions(pck)
    info = collateral.tcb_info_for(ext.fmspc, ext.pceid)
    with log.step("collateral") as step:
        checked = verify_collateral(
            collateral,
            tcb_info=info,
            root=root,
            now=now,
            allow_stale=allow_stale,
            cache=cache,
            crls=crls,
        )
        step.detail = checked.detail
        stale.extend(checked.stale)
        until.append(checked.valid_until)
    qe: QeTcb | None = None
    if collateral.qe_identity is None:
        log.skip("qe-identity", "no QE Identity given")
    else:
        with log.step("qe-identity") as step:
            qe = check_qe_identity(collateral.qe_identity, quote.qe_report)
            if qe.status == REVOKED:
                raise CertificateRevoked(f"the QE's TCB (ISVSVN {qe.isvsvn}) is revoked")
            step.detail = f"MRSIGNER, ISVPRODID, MISCSELECT, ATTRIBUTES match; QE TCB {qe.status}"
    if not collateral.tcb_infos:
        log.skip("tcb-status", "no TCB Info given")
        return None, qe
    with log.step("tcb-status") as step:
        if info is None:
            given = ", ".join(sorted({i.fmspc.hex() for i in collateral.tcb_infos}))
            raise EndorsementMismatch(
                f"no TCB Info for the PCK certificate's FMSPC {ext.fmspc.hex()} PCE-ID "
                f"{ext.pceid.hex()} (given: {given})"
            )
        tcb = evaluate_tdx_tcb(
            info,
            fmspc=ext.fmspc,
            pce_id=ext.pceid,
            pck_components=ext.tcb_components,
            pcesvn=ext.pcesvn,
            quote=quote,
            qe=qe,
        )
        if tcb.status == REVOKED:
            raise CertificateRevoked(
                f"the platform's TCB is revoked (TCB Info {info.fmspc.hex()}, "
                f"advisories {', '.join(tcb.advisory_ids) or 'none'})"
            )
        advisories = f"; advisories {', '.join(tcb.advisory_ids)}" if tcb.advisory_ids else ""
        step.detail = f"{tcb.status} (TCB date {tcb.to_dict()['tcb_date']}){advisories}"
    return tcb, qe
