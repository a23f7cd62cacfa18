"""Verify an Intel TDX quote: quote signature, QE report, key binding and the PCK chain.

The steps, in order (each failure is one typed error):

1. Structure (``MalformedEvidence``): version 4 or 5, lengths consistent, certification data
   type 6 holding a type-5 PCK chain; trailing bytes only when allowed.
2. Quote signature (``BadSignature``): ECDSA P-256/SHA-256 by the attestation key (raw x‖y)
   over header [‖ v5 body descriptor] ‖ body, checked by :meth:`ironroot.crypto.PublicKey.verify`.
3. Header values (``MalformedEvidence``): attestation key type 2, TEE type 0x81.
4. QE report signature (``BadSignature``): ECDSA P-256 by the PCK leaf over the 384-byte QE
   report.
5. Key binding (``BadSignature``): QE REPORTDATA[0:32] = SHA-256(attestation key ‖ QE auth
   data) and REPORTDATA[32:64] all zero; otherwise the attestation key is not the QE's.
6. Chain (``ChainNotTrusted``, ``CertificateExpired``, ``CertificateRevoked``): PCK → Intel SGX
   PCK Platform/Processor CA → Intel SGX Root CA, ECDSA signatures checked by
   ``cryptography``; the root is the built-in, pinned one (a different self-signed certificate
   in the quote is refused); every certificate valid at ``now``; optional CRLs (DER or PEM:
   the PCS root CA CRL and PCK CRL) checked against every certificate they apply to.

The PCK certificate's SGX extension (OID 1.2.840.113741.1.13.1) gives the platform identity
(FMSPC, PCE-ID) and the PCK's TCB components, which go into the claims. TCB info and QE
identity collateral are not appraised here: the QE's MRSIGNER, ISVPRODID and ISVSVN are in the
claims for an appraisal policy to check.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from cryptography import x509
from pyasn1.codec.der import decoder as der_decoder
from pyasn1.error import PyAsn1Error

from ironroot.attestation.evidence._certs import (
    check_not_revoked,
    check_validity,
    fingerprint,
    load_certificates,
    subject_text,
    verify_issued_by,
)
from ironroot.attestation.evidence._claims import CheckLog, EvidenceClaims
from ironroot.attestation.evidence._roots import builtin_intel_root
from ironroot.attestation.evidence._tdx import TdxQuote, _check_header, _parse
from ironroot.crypto import Algorithm, PublicKey
from ironroot.errors import (
    BadSignature,
    ChainNotTrusted,
    MalformedCertificate,
    MalformedInput,
    UnsupportedAlgorithm,
)

__all__ = [
    "PckExtensions",
    "TdxChainCache",
    "load_crls",
    "parse_pck_extensions",
    "tdx_claims",
    "verify_tdx_quote",
]

_SGX_EXT: Final = "1.2.840.113741.1.13.1"
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
    out: dict[str, Any] = {}
    for item in seq:
        oid, value = item[0], item[1]
        out[str(oid)] = value
    return out


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
    try:
        decoded, rest = der_decoder.decode(ext.value)
        if rest:
            raise MalformedCertificate("SGX extension has trailing bytes")
        top = _pairs(decoded)
        tcb = _pairs(top[f"{_SGX_EXT}.2"])
        components = tuple(int(tcb[f"{_SGX_EXT}.2.{i}"]) for i in range(1, 17))
        return PckExtensions(
            ppid=bytes(top[f"{_SGX_EXT}.1"]),
            tcb_components=components,
            pcesvn=int(tcb[f"{_SGX_EXT}.2.17"]),
            cpusvn=bytes(tcb[f"{_SGX_EXT}.2.18"]),
            pceid=bytes(top[f"{_SGX_EXT}.3"]),
            fmspc=bytes(top[f"{_SGX_EXT}.4"]),
            sgx_type=int(top[f"{_SGX_EXT}.5"]),
        )
    except (PyAsn1Error, KeyError, IndexError, TypeError, ValueError) as exc:
        raise MalformedCertificate(f"PCK SGX extension does not decode: {exc}") from exc


def load_crls(data: bytes) -> list[x509.CertificateRevocationList]:
    """Every CRL in ``data`` (one DER CRL, or PEM with one or more ``X509 CRL`` blocks)."""
    if not isinstance(data, bytes) or not data or len(data) > _MAX_CRL_BYTES:
        raise MalformedCertificate("a CRL must be non-empty DER or PEM bytes under 1 MiB")
    try:
        if b"-----BEGIN X509 CRL-----" not in data:
            return [x509.load_der_x509_crl(data)]
        blocks = data.split(b"-----END X509 CRL-----")
        return [
            x509.load_pem_x509_crl(block + b"-----END X509 CRL-----\n")
            for block in blocks
            if b"-----BEGIN X509 CRL-----" in block
        ]
    except ValueError as exc:
        raise MalformedCertificate(f"not an X.509 CRL: {exc}") from exc


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
        verify_issued_by(leaf, inter)
        verify_issued_by(inter, root)
        if cache is not None:
            cache.add(key)
    check_validity((leaf, inter, root), now)
    return leaf, inter


def tdx_claims(quote: TdxQuote, pck: x509.Certificate, *, root: str = "") -> EvidenceClaims:
    """The claims of a verified quote whose QE report ``pck`` signed (``root``: the SHA-256
    of the root certificate the chain reached, hex)."""
    body = quote.body
    ext = parse_pck_extensions(pck)
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
    return EvidenceClaims(
        format="tdx",
        measurements=measurements,
        report_data=body.report_data,
        debug=body.td_attributes.debug,
        svns=svns,
        identity={
            "fmspc": ext.fmspc.hex(),
            "pceid": ext.pceid.hex(),
            "ppid": ext.ppid.hex(),
            "qe_vendor_id": quote.header.qe_vendor_id.hex(),
            "qe_isvprodid": str(quote.qe_report.isv_prod_id),
            "root": root,
        },
        signer=subject_text(pck),
        raw=raw,
    )


def verify_tdx_quote(
    data: bytes,
    *,
    now: datetime,
    root: x509.Certificate | None = None,
    crls: Sequence[x509.CertificateRevocationList] = (),
    cache: TdxChainCache | None = None,
    checks: CheckLog | None = None,
) -> EvidenceClaims:
    """Verify a TDX quote (v4, or v5 with a TDX 1.0/1.5 body) at ``now``; return its claims.

    ``root`` defaults to the built-in Intel SGX Root CA. Bytes after the quote are counted
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
    if crls:
        with log.step("revocation", f"{len(crls)} CRL(s)"):
            check_not_revoked((leaf, inter, anchor), crls)
    else:
        log.skip("revocation", "no CRL given")
    return tdx_claims(quote, pck, root=fingerprint(anchor).hex())
