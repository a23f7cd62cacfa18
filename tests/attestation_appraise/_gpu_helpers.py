"""Test GPUs for composite appraisal: a test NVIDIA-like Device Identity CA and per-GPU leaves
signing SPDM 1.1 GET_MEASUREMENTS exchanges (the spdm module's encoders), and the driver and
VBIOS RIMs that allow their blocks, signed by a test RIM root (tests/rim's ``RimPki``) and
registered on the appraisal world's transparency service."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import sys
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from ironroot.attestation import Endorsements, GpuReport
from ironroot.attestation.evidence import device_id_extension
from ironroot.crypto import Algorithm, PrivateKey
from ironroot.rim import LoggedRims, logged_rim_from_statement, rim_statement
from ironroot.spdm import (
    GetMeasurements,
    MeasurementBlock,
    Measurements,
    MeasurementValueType,
    SpdmVersion,
)

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "rim"))
from _rim_helpers import RimPki, swid

NOW = dt.datetime(2026, 6, 1, 12, 0, tzinfo=dt.UTC)
DRIVER = "550.90.07"
VBIOS = bytes.fromhex("005e009601000000")  # 96.00.5E.00.01
VBIOS_TEXT = "96.00.5E.00.01"
BLOCKS = 8  # blocks 1..8; the RIMs allow 1..4 (driver) and 5..8 (VBIOS)


def block_value(index: int, variant: int = 0) -> bytes:
    return hashlib.sha384(b"gpu block %d/%d" % (index, variant)).digest()


def _tlv(kind: int, value: bytes) -> bytes:
    return kind.to_bytes(2, "little") + len(value).to_bytes(2, "little") + value


FWID = hashlib.sha384(b"test GSP FMC").digest()  # the firmware every test GPU's leaf names


def _name(text: str) -> x509.Name:
    """``CN=<name>``, or ``CN=<name>, serialNumber=<serial>`` for ``"<name>/<serial>"`` (a
    device certificate's subject, as NVIDIA's GSP BROM certificates name the device)."""
    common, _, serial = text.partition("/")
    attributes = [x509.NameAttribute(NameOID.COMMON_NAME, common)]
    if serial:
        attributes.append(x509.NameAttribute(NameOID.SERIAL_NUMBER, serial))
    return x509.Name(attributes)


def _cert(
    subject: str, key: PrivateKey, issuer: str, issuer_key: PrivateKey, *, ca: bool
) -> x509.Certificate:
    signing, public = issuer_key.raw, key.public_key.raw
    assert isinstance(signing, ec.EllipticCurvePrivateKey)
    assert isinstance(public, ec.EllipticCurvePublicKey)
    builder = x509.CertificateBuilder()
    if not ca:
        builder = builder.add_extension(device_id_extension(public, FWID), critical=False)
    return (
        builder.subject_name(_name(subject))
        .issuer_name(_name(issuer))
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - dt.timedelta(days=30))
        .not_valid_after(NOW + dt.timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .sign(signing, hashes.SHA384())
    )


@dataclasses.dataclass
class TestGpu:
    """One GPU: its leaf key and chain (leaf → identity CA → the test root)."""

    chain_pem: bytes
    leaf_key: PrivateKey
    driver: str = DRIVER

    def report(
        self,
        nonce: bytes,
        *,
        tampered_block: int | None = None,
        tampered_all: bool = False,
        omit: frozenset[int] = frozenset(),
        slot: int = 0,
        value_type: MeasurementValueType = MeasurementValueType.MUTABLE_FIRMWARE,
    ) -> GpuReport:
        """A signed report answering ``nonce``; ``tampered_*`` change block values (the
        RIMs allow variant 0 only), ``omit`` leaves opaque TLV types out, ``slot`` is the
        certificate slot asked for, ``value_type`` every block's DMTF value type."""
        request = GetMeasurements(SpdmVersion.V1_1, 0xFF, True, nonce, slot).encode()
        blocks = tuple(
            MeasurementBlock(
                i,
                value_type,
                block_value(i, 1 if tampered_all or i == tampered_block else 0),
            )
            for i in range(1, BLOCKS + 1)
        )
        fields = {
            3: self.driver.encode() + b"\x00",
            6: VBIOS,
            15: b"882\x00",
            17: b"1010\x00",
            18: b"0200\x00",
            20: FWID,
        }
        opaque = b"".join(_tlv(kind, value) for kind, value in fields.items() if kind not in omit)
        response = Measurements(
            SpdmVersion.V1_1, blocks, hashlib.sha256(nonce).digest(), opaque, slot_id=slot
        ).encode_unsigned()
        data = request + response + self.leaf_key.sign(request + response)
        return GpuReport(data, (self.chain_pem,))


@dataclasses.dataclass
class GpuWorld:
    """A test NVIDIA-like CA that makes GPUs, and the RIM PKI whose RIMs allow them."""

    root: x509.Certificate
    ica: x509.Certificate
    ica_key: PrivateKey
    rim_pki: RimPki

    @classmethod
    def generate(cls) -> GpuWorld:
        root_key, ica_key = (PrivateKey.generate(Algorithm.ES384) for _ in range(2))
        root = _cert(
            "Test Device Identity CA", root_key, "Test Device Identity CA", root_key, ca=True
        )
        ica = _cert("Test GH100 Identity", ica_key, "Test Device Identity CA", root_key, ca=True)
        pki = RimPki.generate(
            not_before=NOW - dt.timedelta(days=30), not_after=NOW + dt.timedelta(days=365)
        )
        return cls(root, ica, ica_key, pki)

    def gpu(self, *, driver: str = DRIVER) -> TestGpu:
        leaf_key = PrivateKey.generate(Algorithm.ES384)
        leaf = _cert("Test FMC LF", leaf_key, "Test GH100 Identity", self.ica_key, ca=False)
        pem = b"".join(
            c.public_bytes(serialization.Encoding.PEM) for c in (leaf, self.ica, self.root)
        )
        return TestGpu(pem, leaf_key, driver)

    def device(self, serial: str, leaves: int = 2) -> list[TestGpu]:
        """One GPU as NVIDIA's chains name it: a device certificate (``GSP BROM``, subject
        serialNumber ``serial``) under the identity CA, and ``leaves`` attestation keys it
        certified (one per firmware the GPU ran: the leaf key follows the firmware)."""
        device_key = PrivateKey.generate(Algorithm.ES384)
        name = f"Test GSP BROM/{serial}"
        brom = _cert(name, device_key, "Test GH100 Identity", self.ica_key, ca=True)
        out = []
        for _ in range(leaves):
            leaf_key = PrivateKey.generate(Algorithm.ES384)
            leaf = _cert("Test FMC LF", leaf_key, name, device_key, ca=False)
            pem = b"".join(
                c.public_bytes(serialization.Encoding.PEM)
                for c in (leaf, brom, self.ica, self.root)
            )
            out.append(TestGpu(pem, leaf_key))
        return out

    def rims(self, *, driver: str = DRIVER) -> tuple[tuple[bytes, str], tuple[bytes, str]]:
        """(signed RIM, id) of the driver RIM (blocks 1..4) and the VBIOS RIM (5..8)."""

        def resources(blocks: range) -> str:
            return "".join(
                f'<Resource type="Measurement" index="{b - 1}" active="True" alternatives="1" '
                f'ns2:Hash0="{block_value(b).hex()}" name="Measurement_{b - 1}" size="48"/>'
                for b in blocks
            )

        drv = self.rim_pki.sign(swid(version=driver, resources=resources(range(1, 5))))
        vbios = self.rim_pki.sign(swid(version=VBIOS_TEXT, resources=resources(range(5, 9))))
        return (
            (drv, f"NV_GPU_DRIVER_GH100_{driver}"),
            (vbios, f"NV_GPU_VBIOS_1010_0200_882_{VBIOS_TEXT.replace('.', '')}"),
        )

    def rim_statements(self, world: object, *, driver: str = DRIVER) -> list[bytes]:
        """The two RIMs registered on the world's log by its vendor (transparent statements)."""
        from _ar_helpers import VENDOR_ISS, World

        assert isinstance(world, World)
        out = []
        for data, rim_id in self.rims(driver=driver):
            statement = rim_statement(
                data,
                world.vendor_key,
                iss=VENDOR_ISS,
                rim_id=rim_id,
                now=NOW,
                roots=[self.rim_pki.root],
            )
            out.append(world.client.register(statement).transparent_statement)
        return out

    def logged_rims(self, world: object, *, driver: str = DRIVER) -> LoggedRims:
        """The two RIMs taken back from the world's log, with their receipts."""
        from _ar_helpers import World

        assert isinstance(world, World)
        return LoggedRims(
            logged_rim_from_statement(
                logged, service_keys=world.service_keys, now=NOW, roots=[self.rim_pki.root]
            )
            for logged in self.rim_statements(world, driver=driver)
        )

    def endorsements(self, base: Endorsements, rims: LoggedRims) -> Endorsements:
        return dataclasses.replace(base, rims=rims)
