"""Helpers for the evidence tests: self-made AMD-like and Intel-like PKIs and their evidence.

The self-made AMD chain (ARK → ASK/ASVK → VCEK/VLEK, ECDSA P-384 by default; with ``pss=True``
the ARK and ASK/ASVK are RSA keys signing RSASSA-PSS SHA-384, as AMD's KDS does) lets tests sign
synthetic reports, so that TCB, chip id, Turin layout and signing-key cases reach the
endorsement check through the real signature path, that a chain ending at an untrusted root can
be built at all, and that the ARK can issue CRLs (AMD's revocation of ASKs/ASVKs).

The self-made Intel PKI and the CRL helpers are in ``tests/tee_fakes.py`` (shared with the
appraisal tests).
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import NameOID

from ironroot.attestation.evidence import SnpProduct, SnpTrustAnchor
from ironroot.crypto import Algorithm, PrivateKey
from tee_fakes import Key, make_crl

AMD = "1.3.6.1.4.1.3704.1"
NOT_BEFORE = datetime(2024, 1, 1, tzinfo=UTC)
NOW = datetime(2025, 6, 1, tzinfo=UTC)


def _name(cn: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "Engineering"),
            x509.NameAttribute(NameOID.COUNTRY_NAME, "US"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Advanced Micro Devices"),
            x509.NameAttribute(NameOID.COMMON_NAME, cn),
        ]
    )


def _der_int(value: int) -> bytes:
    body = value.to_bytes((value.bit_length() + 8) // 8 or 1, "big")
    return bytes([0x02, len(body)]) + body


def _ia5(text: str) -> bytes:
    return bytes([0x16, len(text)]) + text.encode()


def _pss() -> padding.PSS:
    return padding.PSS(mgf=padding.MGF1(hashes.SHA384()), salt_length=48)


def make_cert(
    subject: str,
    issuer: str,
    key: Key,
    issuer_key: Key,
    *,
    ca: bool,
    extensions: dict[str, bytes] | None = None,
    not_before: datetime = NOT_BEFORE,
    days: int = 3650,
) -> x509.Certificate:
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(_name(issuer))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_before + timedelta(days=days))
    )
    if ca:
        builder = builder.add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
    for oid, value in (extensions or {}).items():
        builder = builder.add_extension(
            x509.UnrecognizedExtension(x509.ObjectIdentifier(oid), value), critical=False
        )
    if isinstance(issuer_key, rsa.RSAPrivateKey):
        return builder.sign(issuer_key, hashes.SHA384(), rsa_padding=_pss())
    return builder.sign(issuer_key, hashes.SHA384())


@dataclass
class FakeAmd:
    """A self-made ARK/ASK/ASVK for one product, and a factory for VCEKs/VLEKs and reports."""

    product: SnpProduct
    ark_key: Key
    ark: x509.Certificate
    ask_key: Key
    ask: x509.Certificate
    asvk_key: Key
    asvk: x509.Certificate

    def crl(
        self,
        revoked: list[int],
        *,
        last_update: datetime = NOT_BEFORE,
        next_update: datetime | None = None,
        key: Key | None = None,
        extensions: Sequence[tuple[x509.ExtensionType, bool]] = (),
    ) -> x509.CertificateRevocationList:
        """The ARK's CRL (as AMD's KDS serves per product), listing ``revoked`` serials."""
        return make_crl(
            self.ark.subject,
            self.ark_key if key is None else key,
            revoked,
            last_update=last_update,
            next_update=next_update or last_update + timedelta(days=3650),
            extensions=extensions,
        )

    @property
    def anchor(self) -> SnpTrustAnchor:
        return SnpTrustAnchor(self.product, self.ark, self.ask, self.asvk)

    def leaf(
        self,
        *,
        vlek: bool = False,
        tcb: dict[str, int],
        hwid: bytes | None = None,
        product_name: str | None = None,
        not_before: datetime = NOT_BEFORE,
        days: int = 3650,
    ) -> tuple[x509.Certificate, PrivateKey]:
        key = ec.generate_private_key(ec.SECP384R1())
        oids = {"bootloader": "3.1", "tee": "3.2", "snp": "3.3", "microcode": "3.8", "fmc": "3.9"}
        ext = {f"{AMD}.1": _der_int(1), f"{AMD}.2": _ia5(product_name or self.product.value)}
        for component, svn in tcb.items():
            ext[f"{AMD}.{oids[component]}"] = _der_int(svn)
        if hwid is not None:
            ext[f"{AMD}.4"] = hwid
        issuer, issuer_key = (self.asvk, self.asvk_key) if vlek else (self.ask, self.ask_key)
        cert = make_cert(
            "SEV-VLEK" if vlek else "SEV-VCEK",
            issuer.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value,
            key,
            issuer_key,
            ca=False,
            extensions=ext,
            not_before=not_before,
            days=days,
        )
        return cert, PrivateKey(key, Algorithm.ES384)


def make_fake_amd(product: SnpProduct, *, pss: bool = False) -> FakeAmd:
    def new_key() -> Key:
        if pss:
            return rsa.generate_private_key(65537, 2048)
        return ec.generate_private_key(ec.SECP384R1())

    ark_key, ask_key, asvk_key = new_key(), new_key(), new_key()
    ark_cn = f"ARK-{product.value}"
    ark = make_cert(ark_cn, ark_cn, ark_key, ark_key, ca=True, days=9000)
    ask = make_cert(f"SEV-{product.value}", ark_cn, ask_key, ark_key, ca=True, days=9000)
    asvk = make_cert(f"SEV-VLEK-{product.value}", ark_cn, asvk_key, ark_key, ca=True, days=9000)
    return FakeAmd(product, ark_key, ark, ask_key, ask, asvk_key, asvk)


def encode_tcb(tcb: dict[str, int], *, turin: bool) -> int:
    b = bytearray(8)
    if turin:
        b[0], b[1], b[2], b[3] = tcb["fmc"], tcb["bootloader"], tcb["tee"], tcb["snp"]
    else:
        b[0], b[1], b[6] = tcb["bootloader"], tcb["tee"], tcb["snp"]
    b[7] = tcb["microcode"]
    return int.from_bytes(b, "little")


def build_report(
    key: PrivateKey | None,
    *,
    version: int = 3,
    tcb: dict[str, int],
    turin: bool = False,
    chip_id: bytes = bytes(range(64)),
    signing_key: int = 0,
    policy: int = 0x30000,
    cpuid: tuple[int, int, int] = (0x19, 0x01, 0x01),
    report_data: bytes = b"\x42" * 64,
) -> bytes:
    """A synthetic ATTESTATION_REPORT, signed with ``key`` (or left unsigned)."""
    r = bytearray(0x4A0)
    struct.pack_into("<IIQ", r, 0, version, 7, policy)
    struct.pack_into("<II", r, 0x30, 0, 1)
    raw_tcb = encode_tcb(tcb, turin=turin)
    for offset in (0x38, 0x180, 0x1E0, 0x1F0):
        struct.pack_into("<Q", r, offset, raw_tcb)
    struct.pack_into("<I", r, 0x48, signing_key << 2)
    r[0x50:0x90] = report_data
    r[0x90:0xC0] = b"\x11" * 48
    if version >= 3:
        r[0x188], r[0x189], r[0x18A] = cpuid
    r[0x1A0:0x1E0] = chip_id
    if key is not None:
        sig = key.sign(bytes(r[:0x2A0]))
        r[0x2A0:0x2D0] = sig[:48][::-1]
        r[0x2E8:0x318] = sig[48:][::-1]
    return bytes(r)


def gpu_cert(
    cn: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: str,
    issuer_key: ec.EllipticCurvePrivateKey,
    *,
    ca: bool,
) -> x509.Certificate:
    """A certificate of a self-made GPU chain (ECDSA P-384, valid 30 days around ``NOW``)."""
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - timedelta(days=30))
        .not_valid_after(NOW + timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .sign(issuer_key, hashes.SHA384())
    )
