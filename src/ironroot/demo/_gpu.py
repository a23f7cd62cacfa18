"""The demo's GPU vendor and its GPUs: real evidence under a demo-local root, RIMs on the log.

NVIDIA's keys cannot sign evidence for a fresh nonce, so the demo has a GPU vendor of its own
(:data:`GPU_VENDOR`), made with the same formats and the same checks as the real thing:

* :class:`GpuVendor` holds a device identity CA (root → GH100 identity CA, ECDSA P-384) that
  certifies each GPU's attestation key, and a RIM signing chain (root → RIM CA → signer) that
  signs its SWID-tag RIMs with an enveloped XML-DSig (``signxml``: ECDSA-SHA384, C14N 1.1).
  The verifier is configured with the identity root explicitly (``AttestationService.gpu_root``)
  and the RIMs are trusted only from the log, verified under the RIM root: nothing in the
  verifier is bypassed.
* :class:`DemoGpu` is one GPU in confidential-computing mode: its firmware's measurement
  blocks (SHA-384), its driver and VBIOS versions, and :meth:`DemoGpu.attest`, which answers a
  nonce with an SPDM 1.1 GET_MEASUREMENTS exchange (all blocks, signature requested; the
  NVIDIA opaque data TLVs: driver version 3, VBIOS version 6, chip SKU 15, project 17, project
  SKU 18, FWID 20) signed over request ‖ response by its key, whose certificate names the same
  FWID (:func:`ironroot.attestation.evidence.device_id_extension`): the ``nvidia-gpu``
  evidence format.
* :meth:`GpuVendor.driver_rim` / :meth:`GpuVendor.vbios_rim` sign the RIMs whose golden
  values are a GPU's blocks (driver: blocks 1..4, VBIOS: 5..8), and :meth:`GpuVendor.register`
  registers one on the transparency log (content type ``application/swid+xml``, subject the
  RIM id) and takes it back with its receipt (:func:`ironroot.rim.logged_rim_from_statement`).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Final

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from ironroot.attestation.evidence import device_id_extension
from ironroot.crypto import Algorithm, PrivateKey
from ironroot.errors import ConfigError

if TYPE_CHECKING:
    from ironroot.crypto import Verifier
    from ironroot.rim import LoggedRim
    from ironroot.transparency import TransparencyClient

__all__ = ["GPU_VENDOR", "DemoGpu", "GpuVendor"]

GPU_VENDOR: Final = "https://gpu-vendor.example"
"""The GPU vendor's issuer name on the log: it registers its RIMs there."""
PRODUCT: Final = "GH100"
PROJECT, SKU, CHIP = "1010", "0200", "882"
VBIOS: Final = "96.00.5E.00.01"
FMC_FWID: Final = hashlib.sha384(b"demo GSP FMC").digest()
"""The FWID of the firmware holding each demo GPU's attestation key (certificate and report)."""
BLOCKS: Final = 8
"""Measurement blocks 1..8: the driver RIM covers 1..4, the VBIOS RIM 5..8."""
_DRIVER_BLOCKS: Final = range(1, 5)
_VBIOS_BLOCKS: Final = range(5, BLOCKS + 1)
_SWID: Final = "http://standards.iso.org/iso/19770/-2/2015/schema.xsd"
_SHA384: Final = "http://www.w3.org/2001/04/xmlenc#sha384"
_RIM_IM: Final = "https://trustedcomputinggroup.org/resource/tcg-reference-integrity-manifest-rim-information-model/"


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Demo GPU Vendor"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _certificate(
    subject: str,
    key: PrivateKey,
    issuer: str,
    issuer_key: PrivateKey,
    *,
    ca: bool,
    now: dt.datetime,
    path_length: int | None = None,
    fwid: bytes | None = None,
) -> x509.Certificate:
    public, signing = key.public_key.raw, issuer_key.raw
    if not isinstance(public, ec.EllipticCurvePublicKey) or not isinstance(
        signing, ec.EllipticCurvePrivateKey
    ):
        raise ConfigError("the demo GPU vendor's keys are ECDSA P-384")
    builder = x509.CertificateBuilder()
    if fwid is not None:
        builder = builder.add_extension(device_id_extension(public, fwid), critical=False)
    return (
        builder.subject_name(_name(subject))
        .issuer_name(_name(issuer))
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=path_length), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=not ca,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=ca,
                crl_sign=ca,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(signing, hashes.SHA384())
    )


def _pem(*certificates: x509.Certificate) -> bytes:
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certificates)


def _tlv(kind: int, value: bytes) -> bytes:
    """One NVIDIA opaque-data field: type and length (little-endian u16), value."""
    return kind.to_bytes(2, "little") + len(value).to_bytes(2, "little") + value


def _vbios_bytes(version: str) -> bytes:
    """A VBIOS version as the opaque data carries it (``96.00.5E.00.01`` → 8 bytes)."""
    octets = bytes.fromhex(version.replace(".", ""))
    return bytes((octets[3], octets[2], octets[1], octets[0], octets[4], 0, 0, 0))


@dataclasses.dataclass(frozen=True)
class DemoGpu:
    """One GPU: its attestation key and chain (leaf first, PEM), firmware and versions."""

    name: str
    key: PrivateKey = dataclasses.field(repr=False)
    chain_pem: bytes = dataclasses.field(repr=False)
    blocks: Mapping[int, bytes] = dataclasses.field(repr=False)
    driver: str

    def attest(self, nonce: bytes) -> tuple[bytes, tuple[bytes, ...]]:
        """The GPU's answer to ``nonce``: the signed SPDM 1.1 exchange (request ‖ response ‖
        signature) and its certificate chain (module docs)."""
        from ironroot.spdm import (
            GetMeasurements,
            MeasurementBlock,
            Measurements,
            MeasurementValueType,
            SpdmVersion,
        )

        request = GetMeasurements(SpdmVersion.V1_1, 0xFF, True, nonce, 0).encode()
        blocks = tuple(
            MeasurementBlock(index, MeasurementValueType.MUTABLE_FIRMWARE, value)
            for index, value in sorted(self.blocks.items())
        )
        opaque = (
            _tlv(3, self.driver.encode() + b"\x00")
            + _tlv(6, _vbios_bytes(VBIOS))
            + _tlv(15, CHIP.encode() + b"\x00")
            + _tlv(17, PROJECT.encode() + b"\x00")
            + _tlv(18, SKU.encode() + b"\x00")
            + _tlv(20, FMC_FWID)
        )
        response = Measurements(SpdmVersion.V1_1, blocks, os.urandom(32), opaque).encode_unsigned()
        return request + response + self.key.sign(request + response), (self.chain_pem,)


@dataclasses.dataclass(frozen=True)
class GpuVendor:
    """The demo's GPU vendor (module docs): its device identity CA and its RIM signer."""

    identity_root: x509.Certificate
    identity_ca: x509.Certificate
    identity_ca_key: PrivateKey = dataclasses.field(repr=False)
    rim_root: x509.Certificate
    rim_chain: tuple[x509.Certificate, ...]
    rim_key: PrivateKey = dataclasses.field(repr=False)
    statements: PrivateKey = dataclasses.field(repr=False)
    """Signs the vendor's RIM statements on the log (``iss`` = :data:`GPU_VENDOR`)."""

    @classmethod
    def generate(cls, *, now: dt.datetime, statements: PrivateKey) -> GpuVendor:
        keys = [PrivateKey.generate(Algorithm.ES384) for _ in range(5)]
        id_root_key, id_ca_key, rim_root_key, rim_ca_key, rim_key = keys
        id_root = _certificate(
            "Demo Device Identity CA",
            id_root_key,
            "Demo Device Identity CA",
            id_root_key,
            ca=True,
            now=now,
        )
        id_ca = _certificate(
            "Demo GH100 Identity",
            id_ca_key,
            "Demo Device Identity CA",
            id_root_key,
            ca=True,
            now=now,
            path_length=0,
        )
        rim_root = _certificate(
            "Demo RIM Root CA", rim_root_key, "Demo RIM Root CA", rim_root_key, ca=True, now=now
        )
        rim_ca = _certificate(
            "Demo RIM CA",
            rim_ca_key,
            "Demo RIM Root CA",
            rim_root_key,
            ca=True,
            now=now,
            path_length=0,
        )
        rim_leaf = _certificate(
            "Demo RIM Signer", rim_key, "Demo RIM CA", rim_ca_key, ca=False, now=now
        )
        return cls(
            id_root, id_ca, id_ca_key, rim_root, (rim_leaf, rim_ca, rim_root), rim_key, statements
        )

    def gpu(self, name: str, *, driver: str, now: dt.datetime) -> DemoGpu:
        """A new GPU certified by the identity CA, running ``driver``."""
        key = PrivateKey.generate(Algorithm.ES384)
        leaf = _certificate(
            f"Demo {name} FMC LF",
            key,
            "Demo GH100 Identity",
            self.identity_ca_key,
            ca=False,
            now=now,
            fwid=FMC_FWID,
        )
        return DemoGpu(
            name,
            key,
            _pem(leaf, self.identity_ca, self.identity_root),
            firmware_blocks(driver),
            driver,
        )

    def _sign(self, version: str, blocks: Mapping[int, bytes], indexes: Sequence[int]) -> bytes:
        from lxml import etree  # type: ignore[import-untyped]  # lxml ships no stubs
        from signxml.algorithms import CanonicalizationMethod, DigestAlgorithm, SignatureMethod
        from signxml.signer import XMLSigner

        root = etree.Element(
            f"{{{_SWID}}}SoftwareIdentity",
            nsmap={None: _SWID, "ns2": _SHA384, "rim": _RIM_IM},
            name=PRODUCT,
            tagId=f"demo-{PRODUCT}-{version}",
            version="1.0",
            tagVersion="0",
        )
        etree.SubElement(
            root, f"{{{_SWID}}}Entity", name="Demo GPU Vendor", role="softwareCreator tagCreator"
        )
        etree.SubElement(
            root,
            f"{{{_SWID}}}Meta",
            {
                "colloquialVersion": version,
                "product": PRODUCT,
                "edition": "GPU",
                "revision": "r1",
                f"{{{_RIM_IM}}}PlatformManufacturerStr": "Demo GPU Vendor",
                f"{{{_RIM_IM}}}PlatformModel": PRODUCT,
            },
        )
        payload = etree.SubElement(root, f"{{{_SWID}}}Payload")
        for index in indexes:
            etree.SubElement(
                payload,
                f"{{{_SWID}}}Resource",
                {
                    "type": "Measurement",
                    "index": str(index - 1),  # RIM index i is SPDM block i + 1
                    "active": "True",
                    "alternatives": "1",
                    f"{{{_SHA384}}}Hash0": blocks[index].hex(),
                    "name": f"Measurement_{index - 1}",
                    "size": "48",
                },
            )
        signer = XMLSigner(
            signature_algorithm=SignatureMethod.ECDSA_SHA384,
            digest_algorithm=DigestAlgorithm.SHA384,
            c14n_algorithm=CanonicalizationMethod.CANONICAL_XML_1_1,
        )
        key = self.rim_key.raw
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise ConfigError("the demo RIM signer's key is ECDSA P-384")
        signed = signer.sign(root, key=key, cert=list(self.rim_chain))
        return bytes(etree.tostring(signed))

    def driver_rim(self, gpu: DemoGpu) -> tuple[bytes, str]:
        """The signed driver RIM allowing ``gpu``'s driver blocks, and its RIM id."""
        return self._sign(gpu.driver, gpu.blocks, _DRIVER_BLOCKS), (
            f"NV_GPU_DRIVER_{PRODUCT}_{gpu.driver}"
        )

    def vbios_rim(self, gpu: DemoGpu) -> tuple[bytes, str]:
        """The signed VBIOS RIM allowing ``gpu``'s VBIOS blocks, and its RIM id."""
        return self._sign(VBIOS, gpu.blocks, _VBIOS_BLOCKS), (
            f"NV_GPU_VBIOS_{PROJECT}_{SKU}_{CHIP}_{VBIOS.replace('.', '')}"
        )

    def register(
        self,
        log: TransparencyClient,
        rim: tuple[bytes, str],
        *,
        now: dt.datetime,
        service_keys: Mapping[bytes, Verifier],
    ) -> LoggedRim:
        """Register ``rim`` (signed RIM, id) on ``log`` and take it back from the log with
        its receipt: the :class:`~ironroot.rim.LoggedRim` a verifier trusts."""
        from ironroot.rim import logged_rim_from_statement, rim_statement

        data, rim_id = rim
        statement = rim_statement(
            data, self.statements, iss=GPU_VENDOR, rim_id=rim_id, now=now, roots=[self.rim_root]
        )
        logged = log.register(statement).transparent_statement
        return logged_rim_from_statement(
            logged, service_keys=service_keys, now=now, roots=[self.rim_root]
        )


def firmware_blocks(driver: str) -> dict[int, bytes]:
    """The measurement blocks of a GPU running ``driver``: the driver's blocks (1..4) depend
    on it, the VBIOS's (5..8) on the VBIOS version."""
    return {
        index: hashlib.sha384(
            f"{PRODUCT} {'driver ' + driver if index in _DRIVER_BLOCKS else 'vbios ' + VBIOS} "
            f"block {index}".encode()
        ).digest()
        for index in range(1, BLOCKS + 1)
    }
