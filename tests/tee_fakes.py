"""Self-made TEE vendor PKIs for tests: CRLs, and an Intel-like PKI with TDX quotes and
PCS-style collateral.

:class:`FakeIntel` (root → PCK Platform CA → PCK, root → TCB Signing) makes synthetic TDX quotes
whose PCK certificate carries any SGX TCB, FMSPC and PCE-ID, and signs synthetic TCB Info / QE
Identity collateral exactly as Intel's PCS serves it (the signature over the inner object's
bytes), so that every TCB status, every mismatch and every stale or tampered document can be
tested end to end. :func:`make_crl` issues CRLs (RSASSA-PSS SHA-384 for RSA issuers, as AMD's
KDS does; ECDSA otherwise). A uniquely named module at the top of ``tests/`` so any test can
import it.
"""

from __future__ import annotations

import hashlib
import json
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID
from pyasn1.codec.der import encoder as der_encoder
from pyasn1.type import univ

Key = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
CRL_START = datetime(2024, 1, 1, tzinfo=UTC)


def _pss() -> padding.PSS:
    return padding.PSS(mgf=padding.MGF1(hashes.SHA384()), salt_length=48)


def make_crl(
    issuer: x509.Name,
    key: Key,
    revoked: list[int],
    *,
    last_update: datetime = CRL_START,
    next_update: datetime | None = None,
    extensions: Sequence[tuple[x509.ExtensionType, bool]] = (),
) -> x509.CertificateRevocationList:
    """A CRL of ``issuer`` signed by ``key`` (RSASSA-PSS SHA-384 for an RSA key, as AMD's KDS
    signs; ECDSA otherwise), listing ``revoked``; valid 30 days unless ``next_update``; with
    ``extensions`` (each with whether it is critical)."""
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(issuer)
        .last_update(last_update)
        .next_update(next_update or last_update + timedelta(days=30))
    )  # see crl_without_next_update for a CRL that has none
    for extension, critical in extensions:
        builder = builder.add_extension(extension, critical=critical)
    for serial in revoked:
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder()
            .serial_number(serial)
            .revocation_date(last_update)
            .build()
        )
    if isinstance(key, rsa.RSAPrivateKey):
        crl = builder.sign(key, hashes.SHA384(), rsa_padding=_pss())
    else:
        crl = builder.sign(key, hashes.SHA256())
    return crl


def _tlv(data: bytes, pos: int) -> tuple[int, int, int]:
    """(tag, start of content, end) of the DER TLV at ``pos``."""
    tag, length = data[pos], data[pos + 1]
    start = pos + 2
    if length & 0x80:
        count = length & 0x7F
        length = int.from_bytes(data[start : start + count], "big")
        start += count
    return tag, start, start + length


def _der(tag: int, content: bytes) -> bytes:
    n = len(content)
    if n < 0x80:
        head = bytes([n])
    else:
        size = n.to_bytes((n.bit_length() + 7) // 8, "big")
        head = bytes([0x80 | len(size)]) + size
    return bytes([tag]) + head + content


def crl_without_next_update(
    crl: x509.CertificateRevocationList, key: ec.EllipticCurvePrivateKey
) -> x509.CertificateRevocationList:
    """``crl`` re-signed (ECDSA SHA-256) with its nextUpdate removed (RFC 5280 requires one;
    ``cryptography``'s builder always writes it, so the TBSCertList is edited here)."""
    tbs = crl.tbs_certlist_bytes
    _, start, end = _tlv(tbs, 0)
    children = []
    pos = start
    while pos < end:
        tag, _, stop = _tlv(tbs, pos)
        children.append((tag, tbs[pos:stop]))
        pos = stop
    times = [i for i, (tag, _) in enumerate(children) if tag in (0x17, 0x18)]
    assert len(times) == 2
    del children[times[1]]
    new_tbs = _der(0x30, b"".join(raw for _, raw in children))
    signature = key.sign(new_tbs, ec.ECDSA(hashes.SHA256()))
    der = crl.public_bytes(Encoding.DER)
    _, outer, _ = _tlv(der, 0)
    _, _, tbs_end = _tlv(der, outer)
    _, _, alg_end = _tlv(der, tbs_end)
    algorithm = der[tbs_end:alg_end]
    body = new_tbs + algorithm + _der(0x03, b"\x00" + signature)
    return x509.load_der_x509_crl(_der(0x30, body))


# --- Intel: a self-made PKI, TDX quotes and PCS-style collateral -------------------------------

SGX = "1.2.840.113741.1.13.1"
FMSPC = bytes.fromhex("50806f000000")
PCE_ID = bytes(2)
QE_MRSIGNER = bytes.fromhex("dc9e2a7c6f948f17474e34a7fc43ed030f7c1563f1babddf6340c82e0e54a8c5")
QE_ATTRIBUTES = bytes.fromhex("1500000000000000e700000000000000")
INTEL_QE_VENDOR_ID = bytes.fromhex("939a7233f79c4ca9940a0db3957f0607")
ISSUED = datetime(2025, 5, 1, tzinfo=UTC)
TDX_NOW = datetime(2025, 5, 20, tzinfo=UTC)
NEXT_UPDATE = datetime(2025, 6, 1, tzinfo=UTC)


def _intel_name(cn: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, cn),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Intel Corporation"),
        ]
    )


def _p256_raw(signature_der: bytes) -> bytes:
    from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

    r, s = decode_dss_signature(signature_der)
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


def _sign(key: ec.EllipticCurvePrivateKey, data: bytes) -> bytes:
    return _p256_raw(key.sign(data, ec.ECDSA(hashes.SHA256())))


def sgx_extension(*, fmspc: bytes, pce_id: bytes, components: list[int], pcesvn: int) -> bytes:
    """The DER of a PCK certificate's SGX extension (1.2.840.113741.1.13.1)."""

    def pair(oid: str, value: Any) -> univ.Sequence:
        seq = univ.Sequence()
        seq.setComponentByPosition(0, univ.ObjectIdentifier(oid))
        seq.setComponentByPosition(1, value)
        return seq

    tcb = univ.Sequence()
    for index, svn in enumerate(components, start=1):
        tcb.setComponentByPosition(index - 1, pair(f"{SGX}.2.{index}", univ.Integer(svn)))
    tcb.setComponentByPosition(16, pair(f"{SGX}.2.17", univ.Integer(pcesvn)))
    tcb.setComponentByPosition(17, pair(f"{SGX}.2.18", univ.OctetString(bytes(components))))
    top = univ.Sequence()
    top.setComponentByPosition(0, pair(f"{SGX}.1", univ.OctetString(bytes(range(16)))))
    top.setComponentByPosition(1, pair(f"{SGX}.2", tcb))
    top.setComponentByPosition(2, pair(f"{SGX}.3", univ.OctetString(pce_id)))
    top.setComponentByPosition(3, pair(f"{SGX}.4", univ.OctetString(fmspc)))
    top.setComponentByPosition(4, pair(f"{SGX}.5", univ.Enumerated(0)))
    return bytes(der_encoder.encode(top))


def _intel_cert(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: str,
    issuer_key: ec.EllipticCurvePrivateKey,
    *,
    ca: bool,
    serial: int | None = None,
    extension: bytes | None = None,
    not_before: datetime = datetime(2024, 1, 1, tzinfo=UTC),
    days: int = 3650,
) -> x509.Certificate:
    builder = (
        x509.CertificateBuilder()
        .subject_name(_intel_name(subject))
        .issuer_name(_intel_name(issuer))
        .public_key(key.public_key())
        .serial_number(serial or x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_before + timedelta(days=days))
    )
    if ca:
        builder = builder.add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
    if extension is not None:
        builder = builder.add_extension(
            x509.UnrecognizedExtension(x509.ObjectIdentifier(SGX), extension), critical=False
        )
    return builder.sign(issuer_key, hashes.SHA256())


def _components(svns: list[int]) -> list[dict[str, int]]:
    return [{"svn": svn} for svn in svns]


def platform_level(
    status: str,
    *,
    sgx: list[int] | None = None,
    pcesvn: int = 11,
    tdx: list[int] | None = None,
    date: str = "2025-02-12T00:00:00Z",
    advisories: list[str] | None = None,
) -> dict[str, Any]:
    """One TDX TCB Info level (16 SGX and 16 TDX component SVNs)."""
    level: dict[str, Any] = {
        "tcb": {
            "sgxtcbcomponents": _components(sgx or [2] * 16),
            "pcesvn": pcesvn,
            "tdxtcbcomponents": _components(tdx or [3, 0, 5] + [0] * 13),
        },
        "tcbDate": date,
        "tcbStatus": status,
    }
    if advisories:
        level["advisoryIDs"] = advisories
    return level


def identity_level(
    status: str, isvsvn: int, *, date: str = "2025-02-12T00:00:00Z", advisories: Sequence[str] = ()
) -> dict[str, Any]:
    level: dict[str, Any] = {"tcb": {"isvsvn": isvsvn}, "tcbDate": date, "tcbStatus": status}
    if advisories:
        level["advisoryIDs"] = list(advisories)
    return level


def _iso(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class FakeIntel:
    """A self-made Intel PKI: root, PCK platform CA, TCB signing; quotes and collateral."""

    root_key: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP256R1())
    )
    ca_key: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP256R1())
    )
    tcb_key: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP256R1())
    )

    def __post_init__(self) -> None:
        self.root = _intel_cert(
            "Intel SGX Root CA", self.root_key, "Intel SGX Root CA", self.root_key, ca=True,
            days=9000,
        )  # fmt: skip
        self.ca = _intel_cert(
            "Intel SGX PCK Platform CA", self.ca_key, "Intel SGX Root CA", self.root_key, ca=True
        )
        self.tcb_signing = _intel_cert(
            "Intel SGX TCB Signing", self.tcb_key, "Intel SGX Root CA", self.root_key, ca=False
        )

    # --- certificates and CRLs

    def pck(
        self,
        *,
        fmspc: bytes = FMSPC,
        pce_id: bytes = PCE_ID,
        components: list[int] | None = None,
        pcesvn: int = 11,
        serial: int = 0x1234,
        extension: bytes | None = None,
    ) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
        """A PCK and its key; ``extension``: the SGX extension's DER as given (else built
        from the other arguments)."""
        key = ec.generate_private_key(ec.SECP256R1())
        ext = extension or sgx_extension(
            fmspc=fmspc, pce_id=pce_id, components=components or [2] * 16, pcesvn=pcesvn
        )
        cert = _intel_cert(
            "Intel SGX PCK Certificate", key, "Intel SGX PCK Platform CA", self.ca_key,
            ca=False, serial=serial, extension=ext,
        )  # fmt: skip
        return cert, key

    def signing_chain(self, *certs: x509.Certificate) -> bytes:
        """PEM of the TCB signing certificate (or ``certs``) and the root, as PCS sends."""
        chosen = certs or (self.tcb_signing, self.root)
        return b"".join(c.public_bytes(Encoding.PEM) for c in chosen)

    def crl(
        self,
        issuer: str,
        revoked: Sequence[int] = (),
        *,
        last_update: datetime = ISSUED,
        next_update: datetime = NEXT_UPDATE,
        extensions: Sequence[tuple[x509.ExtensionType, bool]] = (),
    ) -> x509.CertificateRevocationList:
        """The root CA CRL (``"root"``) or the PCK CRL (``"pck"``)."""
        cert, key = (self.root, self.root_key) if issuer == "root" else (self.ca, self.ca_key)
        return make_crl(
            cert.subject,
            key,
            list(revoked),
            last_update=last_update,
            next_update=next_update,
            extensions=extensions,
        )

    # --- quotes

    def quote(
        self,
        pck: tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None = None,
        *,
        version: int = 4,
        tee_tcb_svn: bytes = bytes([3, 0, 5]) + bytes(13),
        tee_tcb_svn2: bytes | None = None,
        mrsignerseam: bytes = bytes(48),
        seam_attributes: bytes = bytes(8),
        td_attributes: bytes = bytes(8),
        misc_select: int = 0,
        attributes: bytes = QE_ATTRIBUTES,
        mr_signer: bytes = QE_MRSIGNER,
        isv_prod_id: int = 2,
        isv_svn: int = 4,
        report_data: bytes = b"\x42" * 64,
        qe_vendor_id: bytes = INTEL_QE_VENDOR_ID,
    ) -> bytes:
        """A signed TDX quote (v4, or v5 with a TDX 1.5 body when ``tee_tcb_svn2`` is given)."""
        cert, pck_key = pck or self.pck()
        header = struct.pack("<HHIHH16s20s", version, 2, 0x81, 0, 0, qe_vendor_id, bytes(20))
        body = (
            tee_tcb_svn + bytes(48) + mrsignerseam + seam_attributes + td_attributes + bytes(8)
            + b"\x11" * 48 + bytes(48 * 3) + bytes(48 * 4) + report_data
        )  # fmt: skip
        if version == 5:
            body_type = 2
            if tee_tcb_svn2 is not None:
                body += tee_tcb_svn2 + bytes(48)
                body_type = 3
            header += struct.pack("<HI", body_type, len(body))
        signed = header + body
        att_key = ec.generate_private_key(ec.SECP256R1())
        numbers = att_key.public_key().public_numbers()
        att_pub = numbers.x.to_bytes(32, "big") + numbers.y.to_bytes(32, "big")
        auth = bytes(range(32))
        qe = bytearray(384)
        qe[16:20] = misc_select.to_bytes(4, "little")
        qe[48:64] = attributes
        qe[128:160] = mr_signer
        qe[256:258] = isv_prod_id.to_bytes(2, "little")
        qe[258:260] = isv_svn.to_bytes(2, "little")
        qe[320:352] = hashlib.sha256(att_pub + auth).digest()
        pem = b"".join(c.public_bytes(Encoding.PEM) for c in (cert, self.ca, self.root))
        inner = (
            bytes(qe) + _sign(pck_key, bytes(qe)) + struct.pack("<H", len(auth)) + auth
            + struct.pack("<HI", 5, len(pem)) + pem
        )  # fmt: skip
        sig_data = _sign(att_key, signed) + att_pub + struct.pack("<HI", 6, len(inner)) + inner
        return signed + struct.pack("<I", len(sig_data)) + sig_data

    # --- collateral

    def sign_document(self, member: str, body: dict[str, Any], *, key: Any = None) -> bytes:
        """``{"<member>": body, "signature": hex}`` with the signature over the body's bytes."""
        inner = json.dumps(body, separators=(",", ":")).encode()
        signature = _sign(key or self.tcb_key, inner)
        return (
            b'{"'
            + member.encode()
            + b'":'
            + inner
            + b',"signature":"'
            + (signature.hex().encode())
            + b'"}'
        )

    def tcb_info(
        self,
        levels: list[dict[str, Any]] | None = None,
        *,
        fmspc: bytes = FMSPC,
        pce_id: bytes = PCE_ID,
        issue: datetime = ISSUED,
        next_update: datetime = NEXT_UPDATE,
        module: dict[str, str] | None = None,
        identities: list[dict[str, Any]] | None = None,
        key: Any = None,
        **extra: Any,
    ) -> bytes:
        body: dict[str, Any] = {
            "id": "TDX",
            "version": 3,
            "issueDate": _iso(issue),
            "nextUpdate": _iso(next_update),
            "fmspc": fmspc.hex(),
            "pceId": pce_id.hex(),
            "tcbType": 0,
            "tcbEvaluationDataNumber": 17,
            "tdxModule": module
            or {"mrsigner": "00" * 48, "attributes": "00" * 8, "attributesMask": "ff" * 8},
        }
        if identities is not None:
            body["tdxModuleIdentities"] = identities
        body["tcbLevels"] = levels or [platform_level("UpToDate")]
        body.update(extra)
        return self.sign_document("tcbInfo", body, key=key)

    def qe_identity(
        self,
        levels: list[dict[str, Any]] | None = None,
        *,
        issue: datetime = ISSUED,
        next_update: datetime = NEXT_UPDATE,
        key: Any = None,
        **fields: Any,
    ) -> bytes:
        body: dict[str, Any] = {
            "id": "TD_QE",
            "version": 2,
            "issueDate": _iso(issue),
            "nextUpdate": _iso(next_update),
            "tcbEvaluationDataNumber": 17,
            "miscselect": "00000000",
            "miscselectMask": "FFFFFFFF",
            "attributes": "11000000000000000000000000000000",
            "attributesMask": "FBFFFFFFFFFFFFFF0000000000000000",
            "mrsigner": QE_MRSIGNER.hex().upper(),
            "isvprodid": 2,
            "tcbLevels": levels or [identity_level("UpToDate", 4)],
        }
        body.update(fields)
        return self.sign_document("enclaveIdentity", body, key=key)


def module_identity(
    version: int, levels: list[dict[str, Any]], *, mrsigner: bytes = bytes(48)
) -> dict[str, Any]:
    return {
        "id": f"TDX_{version:02X}",
        "mrsigner": mrsigner.hex(),
        "attributes": "00" * 8,
        "attributesMask": "ff" * 8,
        "tcbLevels": levels,
    }
